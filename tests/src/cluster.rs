//! A group of `switchback run` instances (`[cluster]`) over one PostgreSQL store, for
//! whole-binary tests of the group mode: three instances at three vantages (`chicago`,
//! `virginia`, `witness`) with quorum 2, the same real Kamailio and coturn at both sites
//! (a [`Lab`]), and for each instance its own cuttable [`Proxy`] in front of the primary
//! site's PostgreSQL, so that a test can make one vantage see the primary database down
//! while the others still see it up. Optionally the store itself goes through a proxy.
//!
//! Every instance's generic webhook has the same name (`ops`), so that the leader's
//! outbox rows are the group's, but its own URL (`/hooks/ops/{node}`): the path of a
//! request the [`Receiver`] got says which instance sent it.
//!
//! Signals: [`Group::pause`] (SIGSTOP), [`Group::resume`] (SIGCONT) and [`Group::crash`]
//! (SIGKILL) by the child's pid; helpers that ask instances skip the ones paused or
//! crashed (a stopped process would hang every request).

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Context;
use rustix::process::{kill_process, Pid, Signal};
use serde_json::Value;

use crate::databases::{fresh_postgres, postgres_url, TempPg};
use crate::lab::{sample_phones, Lab, Running, Status, TestPhone};
use crate::proxy::Proxy;
use crate::receiver::Receiver;
use crate::switchback::{ConfigBuilder, SiteAddrs};
use crate::wait::until;

/// `(node, vantage)` of the three instances, in order.
pub const MEMBERS: [(&str, &str); 3] = [("chi-1", "chicago"), ("va-1", "virginia"), ("wit-1", "witness")];
/// The admin token of every instance's config.
pub const ADMIN_TOKEN: &str = "cluster-test-admin-token-5b2e";
/// The webhook's name in every instance's config.
pub const WEBHOOK: &str = "ops";

/// How the group is set up.
#[derive(Debug, Clone)]
pub struct GroupOptions {
    /// `[cluster] lease`.
    pub lease: Duration,
    pub quorum: u32,
    /// `[monitor] failback_after`.
    pub failback_after: Duration,
    /// The store's URL goes through a proxy ([`Group::store_proxy`]) that a test can cut.
    pub store_through_proxy: bool,
}

impl Default for GroupOptions {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(3),
            quorum: 2,
            failback_after: Duration::from_secs(2),
            store_through_proxy: false,
        }
    }
}

/// One instance of the group.
#[derive(Debug)]
pub struct Member {
    pub node: &'static str,
    pub vantage: &'static str,
    /// Its `switchback run`, its phones set to the group's (for `pointings`/`bodies`).
    pub running: Running,
    /// The proxy in front of the primary site's database that only this instance probes through.
    pub primary_db: Proxy,
    /// Stopped (SIGSTOP) or killed: not asked by the group's helpers.
    pub out: bool,
}

impl Member {
    /// The process's log, its last `chars` characters (whole when shorter).
    pub fn log_tail(&self, chars: usize) -> String {
        let log = self.running.process.log();
        let mut from = log.len().saturating_sub(chars);
        while !log.is_char_boundary(from) {
            from += 1;
        }
        log[from..].to_owned()
    }

    fn signal(&self, signal: Signal) -> anyhow::Result<()> {
        let pid = self.running.process.pid().context("the process has exited")?;
        let pid = i32::try_from(pid).ok().and_then(Pid::from_raw).context("no pid")?;
        kill_process(pid, signal).with_context(|| format!("sending {signal:?} to {}", self.node))
    }
}

/// Three instances over one fresh PostgreSQL store. Dropping it kills the instances
/// (SIGKILL) before the store database is dropped.
#[derive(Debug)]
pub struct Group {
    pub members: Vec<Member>,
    /// In front of the store when [`GroupOptions::store_through_proxy`].
    pub store_proxy: Option<Proxy>,
    pub receiver: Receiver,
    pub lab: Lab,
    pub options: GroupOptions,
    pub phones: Vec<TestPhone>,
    /// Declared last: dropped after the instances are gone.
    pub store: TempPg,
}

impl Group {
    /// Starts the lab, a fresh store, the receiver and the three instances (the first
    /// imports the sample phones, which creates the store), and waits until every one
    /// answers `/healthz`. Fails when a peer is unavailable (for `require!`).
    pub async fn start(binary: &str, options: GroupOptions) -> anyhow::Result<Self> {
        let (lab, store, pg) = tokio::try_join!(Lab::start(), fresh_postgres(), postgres_url())?;
        let receiver = Receiver::always(202).await?;
        let store_proxy = match options.store_through_proxy {
            true => Some(Proxy::in_front_of(store.url()).await?),
            false => None,
        };
        let store_url = match &store_proxy {
            Some(proxy) => proxy.url(store.url())?,
            None => store.url().to_owned(),
        };
        let phones = sample_phones();
        let mut members = Vec::new();
        let mut public_url: Option<String> = None;
        for (i, (node, vantage)) in MEMBERS.into_iter().enumerate() {
            let primary_db = Proxy::in_front_of(&pg).await?;
            let primary =
                SiteAddrs::new(lab.primary.softswitch_addr(), primary_db.url(&pg)?, lab.primary.stun_addr());
            let builder = ConfigBuilder::new(primary, lab.backup.addrs())
                .failback_after(options.failback_after)
                .admin_token(ADMIN_TOKEN)
                .extra(&format!(
                    "[cluster]\nnode = \"{node}\"\nvantage = \"{vantage}\"\nlease = \"{}ms\"\nquorum = {}\n",
                    options.lease.as_millis(),
                    options.quorum
                ))
                .extra(&format!(
                    "[[alerts]]\nname = \"{WEBHOOK}\"\nurl = \"{}\"\nformat = \"generic\"\n",
                    receiver.url(&format!("{WEBHOOK}/{node}"))
                ));
            // The first imports the phones (creating the store); the others start on it.
            let imported: &[TestPhone] = if i == 0 { &phones } else { &[] };
            let mut attempt = 0;
            let mut running = loop {
                attempt += 1;
                let config = builder.write_with_store(&store_url)?;
                // One public URL for the group, as behind the load balancer of a real
                // deployment (it is in every phone file): the first instance's address.
                let listen = config.listen().context("no listen address")?;
                if i == 0 {
                    public_url = Some(format!("http://{listen}"));
                }
                let public = public_url.clone().context("no public URL")?;
                let own = format!("public_url = \"http://{listen}\"");
                anyhow::ensure!(config.text().contains(&own), "no `{own}` in the config");
                config.rewrite(&config.text().replace(&own, &format!("public_url = \"{public}\"")))?;
                match Running::start_with(binary, &builder, config, if attempt == 1 { imported } else { &[] })
                    .await
                {
                    Ok(running) => break running,
                    // The free port was taken in between (another process's outgoing
                    // connection): another port.
                    Err(err) if attempt < 3 && format!("{err:#}").contains("Address already in use") => {
                        eprintln!("note: {node}'s port was taken before it listened; again on another");
                    }
                    Err(err) => return Err(err.context(format!("starting {node}"))),
                }
            };
            running.phones = phones.clone();
            members.push(Member { node, vantage, running, primary_db, out: false });
        }
        Ok(Self { members, store_proxy, receiver, lab, options, phones, store })
    }

    /// The instances not paused or crashed, with their index.
    pub fn live(&self) -> impl Iterator<Item = (usize, &Member)> {
        self.members.iter().enumerate().filter(|(_, m)| !m.out)
    }

    /// Every member's log tail, for a failing assertion's message.
    pub fn logs(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("==== {} ({}) log tail ====\n{}", m.node, m.vantage, m.log_tail(6000)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `/api/status` of every live instance, in member order with the index.
    pub async fn statuses(&self) -> anyhow::Result<Vec<(usize, Status)>> {
        let mut out = Vec::new();
        for (i, member) in self.live() {
            out.push((i, member.running.status().await.with_context(|| member.node.to_owned())?));
        }
        Ok(out)
    }

    /// The leader every live instance names (`cluster.leader`), when they all name the
    /// same one; `None` while they disagree or none leads.
    pub async fn agreed_leader(&self) -> Option<String> {
        let statuses = self.statuses().await.ok()?;
        let leaders: BTreeSet<Option<String>> = statuses.iter().map(|(_, s)| leader_of(s)).collect();
        match leaders.into_iter().collect::<Vec<_>>().as_slice() {
            [Some(leader)] => Some(leader.clone()),
            _ => None,
        }
    }

    /// The member index of a node name.
    pub fn index_of(&self, node: &str) -> Option<usize> {
        self.members.iter().position(|m| m.node == node)
    }

    /// Waits until every live instance names the same leader; answers its index.
    pub async fn wait_leader(&self, deadline: Duration) -> anyhow::Result<usize> {
        let leader = until("every live instance to name one leader", deadline, || self.agreed_leader())
            .await
            .with_context(|| self.logs())?;
        self.index_of(&leader).with_context(|| format!("the leader `{leader}` is none of the nodes"))
    }

    /// Waits until every live instance has every service checked healthy, the sip and
    /// stun routes on the primary, every live vantage reported on the primary database,
    /// and one leader named by all: a settled group to start a test from.
    pub async fn settled(&self, deadline: Duration) -> anyhow::Result<usize> {
        let vantages = self.live().count();
        until("a settled group", deadline, || async {
            for (_, status) in self.statuses().await.ok()? {
                let services = status.0["services"].as_array()?;
                let all_up = services.len() == 6 && services.iter().all(|s| s["healthy"] == true);
                let seen = status.service("primary", "database")?["vantages"].as_array()?.len();
                let home =
                    status.route("sip", "state") == "primary" && status.route("stun", "state") == "primary";
                if !(all_up && home && seen >= vantages) {
                    return None;
                }
            }
            self.agreed_leader().await
        })
        .await
        .with_context(|| self.logs())?;
        self.wait_leader(Duration::from_secs(1)).await
    }

    /// SIGSTOP: the instance freezes (its lease runs out; it answers nothing).
    pub fn pause(&mut self, i: usize) -> anyhow::Result<()> {
        self.members[i].signal(Signal::STOP)?;
        self.members[i].out = true;
        Ok(())
    }

    /// SIGCONT after [`Group::pause`].
    pub fn resume(&mut self, i: usize) -> anyhow::Result<()> {
        self.members[i].signal(Signal::CONT)?;
        self.members[i].out = false;
        Ok(())
    }

    /// SIGTERM, and waits for a clean exit (see [`Running::stop`]).
    pub async fn stop(&mut self, i: usize) -> anyhow::Result<()> {
        self.members[i].out = true;
        self.members[i].running.stop().await
    }

    /// SIGKILL, and waits until the process is gone.
    pub async fn crash(&mut self, i: usize) -> anyhow::Result<()> {
        self.members[i].signal(Signal::KILL)?;
        self.members[i].out = true;
        let member = &mut self.members[i];
        until("the killed instance to exit", Duration::from_secs(10), || {
            let exited = member.running.process.exited();
            async move { exited }
        })
        .await?;
        Ok(())
    }

    /// What the store's PostgreSQL says of the sessions on the store database and of the
    /// locks on the lease row's table (psql), for a failing assertion's message.
    pub async fn store_activity(&self) -> String {
        let sql = "SELECT a.pid, a.state, now() - a.xact_start AS in_tx, \
                   coalesce(a.wait_event_type || '/' || a.wait_event, '-') AS waits, \
                   coalesce((SELECT string_agg(l.mode || CASE WHEN l.granted THEN '' ELSE ' (waiting)' END, ', ') \
                             FROM pg_locks l WHERE l.pid = a.pid AND l.relation = 'cluster_lease'::regclass), '-') \
                       AS cluster_lease_locks, \
                   left(regexp_replace(a.query, '\\s+', ' ', 'g'), 110) AS query \
                   FROM pg_stat_activity a WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() \
                   ORDER BY a.xact_start NULLS LAST";
        psql(self.store.url(), sql).await.unwrap_or_else(|err| format!("(psql: {err:#})"))
    }

    /// Whether a session of the store is idle inside a transaction that holds a lock on
    /// the lease's table (a fenced write of the leader, begun and not finished).
    pub async fn lease_locked_by_an_idle_transaction(&self) -> anyhow::Result<bool> {
        let sql = "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                   WHERE l.relation = 'cluster_lease'::regclass AND l.granted \
                   AND a.state = 'idle in transaction' AND a.datname = current_database()";
        Ok(psql(self.store.url(), sql).await?.trim() != "0")
    }

    /// Every phone's file from every live instance: each must answer 200 with the same
    /// bytes and the same `ETag` everywhere. Answers the bodies, in phone order.
    pub async fn same_files(&self) -> anyhow::Result<Vec<Vec<u8>>> {
        let mut bodies = Vec::new();
        for phone in &self.phones {
            let mut seen: Option<(String, Vec<u8>, Option<String>)> = None;
            for (_, member) in self.live() {
                let response = member.running.get(&phone.path()).await?;
                anyhow::ensure!(
                    response.status == 200,
                    "{} answered {} for {}",
                    member.node,
                    response.status,
                    phone.path()
                );
                let etag = response.header("etag").map(str::to_owned);
                anyhow::ensure!(etag.is_some(), "{} served {} without an ETag", member.node, phone.path());
                match &seen {
                    None => seen = Some((member.node.to_owned(), response.body, etag)),
                    Some((first, body, first_etag)) => {
                        anyhow::ensure!(
                            *body == response.body,
                            "{} and {} serve different bytes for {}:\n--- {first}\n{}\n--- {}\n{}",
                            first,
                            member.node,
                            phone.path(),
                            String::from_utf8_lossy(body),
                            member.node,
                            response.text()
                        );
                        anyhow::ensure!(
                            *first_etag == etag,
                            "{first} and {} serve {} with ETags {first_etag:?} and {etag:?}",
                            member.node,
                            phone.path()
                        );
                    }
                }
            }
            bodies.push(seen.map(|(_, body, _)| body).unwrap_or_default());
        }
        Ok(bodies)
    }

    /// Events of `kind` as the first live instance serves them (the store's, shared).
    pub async fn events_of(&self, kind: &str) -> anyhow::Result<Vec<Value>> {
        let (_, member) = self.live().next().context("no live instance")?;
        member.running.events_of(kind).await
    }

    /// The route's transitions to `to`, newest first.
    pub async fn transitions_to(&self, route: &str, to: &str) -> anyhow::Result<Vec<Value>> {
        let events = self.events_of("transition").await?;
        Ok(events.into_iter().filter(|e| e["route"] == route && e["to"] == to).collect())
    }
}

/// `cluster.leader` of a status.
pub fn leader_of(status: &Status) -> Option<String> {
    status.0["cluster"]["leader"].as_str().map(str::to_owned)
}

/// `cluster.term` of a status.
pub fn term_of(status: &Status) -> i64 {
    status.0["cluster"]["term"].as_i64().unwrap_or(0)
}

/// What `vantage` sees of a service (`services[].vantages[]`), if it reported.
pub fn seen_from<'a>(status: &'a Status, role: &str, kind: &str, vantage: &str) -> Option<&'a Value> {
    status.service(role, kind)?["vantages"].as_array()?.iter().find(|v| v["vantage"] == vantage)
}

/// Runs one query with `psql` on `url`, unaligned; answers what it printed.
async fn psql(url: &str, sql: &str) -> anyhow::Result<String> {
    let output = tokio::process::Command::new("psql")
        .args([url, "-X", "-A", "-t", "-F", " | ", "-c", sql])
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(10), output).await.context("psql hung")??;
    anyhow::ensure!(output.status.success(), "psql: {}", String::from_utf8_lossy(&output.stderr));
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
