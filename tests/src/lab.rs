//! A whole two-site lab for end-to-end tests of `switchback run`: at each site a real
//! Kamailio and a real coturn on their own loopback addresses, and the machine's database
//! behind a [`Proxy`] (PostgreSQL for the primary, MariaDB for the backup) so that a test
//! can cut it; sample phones of both vendors; and [`Running`], a `switchback run` with
//! its phones imported through the CLI and helpers for its HTTP paths.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

use crate::databases::{mariadb_url, postgres_url};
use crate::peers::{Coturn, Kamailio, SipAnswer};
use crate::phone_files::{self, Pointing};
use crate::proxy::Proxy;
use crate::switchback::{
    http_client, phones_import, read, ConfigBuilder, HttpResponse, SiteAddrs, Switchback, TestConfig,
};

/// How long `switchback run` may take to answer `/healthz` after it was started.
pub const READY_WITHIN: Duration = Duration::from_secs(30);

/// One site's three servers. A stopped softswitch or STUN server leaves its address
/// unanswered (the kernel refuses it), and a softswitch can come back at the same address.
#[derive(Debug)]
pub struct Site {
    softswitch_addr: SocketAddr,
    softswitch: Option<Kamailio>,
    stun_addr: SocketAddr,
    stun: Option<Coturn>,
    database: Proxy,
    database_url: String,
}

impl Site {
    async fn start(database_server: &str) -> anyhow::Result<Self> {
        let (kamailio, coturn, database) = tokio::try_join!(
            Kamailio::start(SipAnswer::Ok),
            Coturn::start(),
            Proxy::in_front_of(database_server)
        )?;
        let database_url = database.url(database_server)?;
        Ok(Self {
            softswitch_addr: kamailio.addr(),
            softswitch: Some(kamailio),
            stun_addr: coturn.addr(),
            stun: Some(coturn),
            database,
            database_url,
        })
    }

    /// What switchback is told about the site.
    pub fn addrs(&self) -> SiteAddrs {
        SiteAddrs::new(self.softswitch_addr, self.database_url.clone(), self.stun_addr)
    }

    /// Where phones register when this site is active (`host:port`).
    pub fn softswitch_addr(&self) -> SocketAddr {
        self.softswitch_addr
    }

    /// The STUN server phones use when this site is active (`host:port`).
    pub fn stun_addr(&self) -> SocketAddr {
        self.stun_addr
    }

    /// Kills the softswitch (SIGKILL to its process group); returns once it is gone.
    pub fn stop_softswitch(&mut self) {
        self.softswitch = None;
    }

    /// Starts a softswitch again at the address the stopped one had.
    pub async fn start_softswitch(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.softswitch.is_none(), "the softswitch is running already");
        self.softswitch = Some(Kamailio::start_at(self.softswitch_addr, SipAnswer::Ok).await?);
        Ok(())
    }

    /// Kills the STUN server; returns once it is gone.
    pub fn stop_stun(&mut self) {
        self.stun = None;
    }

    /// The proxy in front of the site's database: `cut()` it to make the database
    /// refuse, `restore()` it to bring it back.
    pub fn database(&self) -> &Proxy {
        &self.database
    }
}

/// A primary site (`chicago`: Kamailio, coturn, PostgreSQL behind a proxy) and a backup
/// site (`virginia`: Kamailio, coturn, MariaDB behind a proxy), every server healthy.
#[derive(Debug)]
pub struct Lab {
    pub primary: Site,
    pub backup: Site,
}

impl Lab {
    /// Starts all six servers; fails when a peer or a database server is unavailable
    /// (for [`require!`](crate::require)).
    pub async fn start() -> anyhow::Result<Self> {
        let (pg, maria) = tokio::try_join!(postgres_url(), mariadb_url())?;
        let (primary, backup) = tokio::try_join!(Site::start(&pg), Site::start(&maria))?;
        Ok(Self { primary, backup })
    }

    /// A config for the two sites with the harness's short timers (see [`ConfigBuilder`]).
    pub fn config(&self) -> ConfigBuilder {
        ConfigBuilder::new(self.primary.addrs(), self.backup.addrs())
    }

    /// Where phones point when `sip` and `stun` are on the named sites' servers.
    pub fn pointing(&self, sip: &Site, stun: &Site) -> Pointing {
        Pointing { sip: sip.softswitch_addr().to_string(), stun: stun.stun_addr().to_string() }
    }

    /// Everything on the primary.
    pub fn on_primary(&self) -> Pointing {
        self.pointing(&self.primary, &self.primary)
    }
}

// ---- phones ------------------------------------------------------------------------------

/// A phone of the inventory, as a CSV row has it (MAC normalised to 12 lowercase hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestPhone {
    pub mac: String,
    /// `yealink` or `linksys`: also the folder of its file under `/prov/`.
    pub vendor: &'static str,
    pub model: String,
    pub display_name: String,
    pub user_id: String,
    pub auth_id: String,
    pub password: String,
    /// The `prov_password` column: its password for HTTP Digest on its own file.
    pub prov_password: Option<String>,
}

impl TestPhone {
    pub fn new(mac: &str, vendor: &'static str, n: usize) -> Self {
        Self {
            mac: mac.to_owned(),
            vendor,
            model: if vendor == "yealink" { "T46S".into() } else { "SPA504G".into() },
            display_name: format!("Desk {n}"),
            user_id: format!("{}", 2000 + n),
            auth_id: format!("auth{}", 2000 + n),
            password: format!("pw-{n}-s3cret"),
            prov_password: None,
        }
    }

    /// The same phone with a provisioning password.
    pub fn with_prov_password(mut self, password: &str) -> Self {
        self.prov_password = Some(password.to_owned());
        self
    }

    /// `/prov/yealink/{mac}.cfg` or `/prov/linksys/spa{mac}.xml`.
    pub fn path(&self) -> String {
        match self.vendor {
            "yealink" => format!("/prov/yealink/{}.cfg", self.mac),
            _ => format!("/prov/linksys/spa{}.xml", self.mac),
        }
    }
}

/// Three Yealink and three Linksys phones, one with a display name that needs escaping
/// in XML and quoting in CSV.
pub fn sample_phones() -> Vec<TestPhone> {
    let mut phones = vec![
        TestPhone::new("0015651234a1", "yealink", 1),
        TestPhone::new("0015651234a2", "yealink", 2),
        TestPhone::new("805ec0aabb03", "yealink", 3),
        TestPhone::new("c8d719000104", "linksys", 4),
        TestPhone::new("c8d719000105", "linksys", 5),
        TestPhone::new("0018b9ffee06", "linksys", 6),
    ];
    phones[4].display_name = "Lobby & Co <main>, \"front\"".into();
    phones
}

/// The phones as a CSV file with the documented header, MACs in the common spellings;
/// with the `prov_password` column when any phone has one.
pub fn phones_csv(phones: &[TestPhone]) -> String {
    let prov = phones.iter().any(|p| p.prov_password.is_some());
    let mut out = String::from("mac,vendor,model,display_name,user_id,auth_id,password");
    out.push_str(if prov { ",prov_password\n" } else { "\n" });
    for (i, phone) in phones.iter().enumerate() {
        let mac = spelled(&phone.mac, i);
        let fields = [
            mac.as_str(),
            phone.vendor,
            &phone.model,
            &phone.display_name,
            &phone.user_id,
            &phone.auth_id,
            &phone.password,
        ];
        let mut row: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        if prov {
            row.push(csv_field(phone.prov_password.as_deref().unwrap_or_default()));
        }
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

/// `0015651234ab`, `00:15:65:12:34:AB` or `00-15-65-12-34-ab`, by turns.
fn spelled(mac: &str, i: usize) -> String {
    let pairs: Vec<&str> = (0..6).map(|j| &mac[j * 2..j * 2 + 2]).collect();
    match i % 3 {
        0 => mac.to_owned(),
        1 => pairs.join(":").to_uppercase(),
        _ => pairs.join("-"),
    }
}

fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

/// Writes `text` as `name` in `dir`.
pub fn write_file(dir: &Path, name: &str, text: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

// ---- a running switchback ----------------------------------------------------------------

/// `switchback run` on a config from [`ConfigBuilder`], with its phones imported by
/// `switchback phones import` before it started.
#[derive(Debug)]
pub struct Running {
    pub config: TestConfig,
    pub process: Switchback,
    pub base: String,
    pub phones: Vec<TestPhone>,
    client: reqwest::Client,
    /// Sent as a bearer token on `/api/` reads by [`Running::get`].
    read_token: Option<String>,
}

impl Running {
    /// Writes the config, imports `phones` through the CLI, starts `switchback run` and
    /// waits until it answers `/healthz`.
    pub async fn start(binary: &str, builder: &ConfigBuilder, phones: &[TestPhone]) -> anyhow::Result<Self> {
        Self::start_with(binary, builder, builder.write()?, phones).await
    }

    /// [`Running::start`] on a config already written (e.g. with another store).
    pub async fn start_with(
        binary: &str,
        builder: &ConfigBuilder,
        config: TestConfig,
        phones: &[TestPhone],
    ) -> anyhow::Result<Self> {
        if !phones.is_empty() {
            let csv = write_file(config.dir(), "phones.csv", &phones_csv(phones))?;
            let import = phones_import(binary, config.path(), &csv).await?;
            anyhow::ensure!(
                import.code == Some(0),
                "phones import exited {:?}:\n{}{}",
                import.code,
                import.stdout,
                import.stderr
            );
        }
        let base = config.base_url()?;
        let mut process = Switchback::run(binary, config.path())?;
        process.wait_ready(&base, READY_WITHIN).await?;
        let read_token = builder.read_token_value().map(str::to_owned);
        Ok(Self { config, process, base, phones: phones.to_vec(), client: http_client()?, read_token })
    }

    /// Stops it (SIGTERM), to start it again with [`Running::start_again`].
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let status = self.process.kill().await?;
        anyhow::ensure!(status.success(), "switchback exited {status} on SIGTERM:\n{}", self.process.log());
        Ok(())
    }

    /// Starts it again on the same config and store (after [`Running::stop`]) and waits
    /// until it answers.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        self.process.restart().await?;
        // A fresh client: pooled connections went with the old process.
        self.client = http_client()?;
        self.process.wait_ready(&self.base, READY_WITHIN).await
    }

    /// The client requests go through (no proxy, a 10 s timeout).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET path`, any status; `/api/` paths with the config's read token, as a script
    /// or Grafana would (use [`Running::client`] to ask without one).
    pub async fn get(&self, path: &str) -> anyhow::Result<HttpResponse> {
        let url = self.url(path);
        let mut request = self.client.get(&url);
        if let (true, Some(token)) = (path.starts_with("/api/"), &self.read_token) {
            request = request.bearer_auth(token);
        }
        read(request.send().await.with_context(|| format!("GET {url}"))?).await
    }

    /// `GET path` that must answer 200 with JSON.
    pub async fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        let response = self.get(path).await?;
        anyhow::ensure!(response.status == 200, "GET {path}: {} {}", response.status, response.text());
        response.json()
    }

    /// `/api/status`.
    pub async fn status(&self) -> anyhow::Result<Status> {
        Ok(Status(self.get_json("/api/status").await?))
    }

    /// Waits until the primary softswitch has been checked `rounds` more times, so that
    /// time has passed as the monitor sees it (no fixed sleep).
    pub async fn wait_rounds(&self, rounds: usize) -> anyhow::Result<()> {
        let checked = |s: &Status| s.service("primary", "softswitch").map(|v| v["checked_at"].clone());
        for round in 1..=rounds {
            let last = checked(&self.status().await?);
            crate::wait::until(&format!("check round {round}"), Duration::from_secs(10), || async {
                (checked(&self.status().await.ok()?) != last).then_some(())
            })
            .await?;
        }
        Ok(())
    }

    /// Every event, newest first (one page of up to 500).
    pub async fn events(&self) -> anyhow::Result<Vec<Value>> {
        let page = self.get_json("/api/events?limit=500").await?;
        page["events"].as_array().cloned().context("no `events` array")
    }

    /// Events of `kind` (`transition`, `both_down`, `operator`, …), newest first.
    pub async fn events_of(&self, kind: &str) -> anyhow::Result<Vec<Value>> {
        Ok(self.events().await?.into_iter().filter(|e| e["kind"] == kind).collect())
    }

    /// The phone's file, 200 expected.
    pub async fn file(&self, phone: &TestPhone) -> anyhow::Result<HttpResponse> {
        let response = self.get(&phone.path()).await?;
        anyhow::ensure!(response.status == 200, "GET {}: {}", phone.path(), response.status);
        Ok(response)
    }

    /// Where the phone's served file points it, the file parsed whole.
    pub async fn pointing(&self, phone: &TestPhone) -> anyhow::Result<Pointing> {
        let response = self.file(phone).await?;
        phone_files::pointing(phone.vendor, &response.body)
            .with_context(|| format!("{}:\n{}", phone.path(), response.text()))
    }

    /// Where every phone's file points, in the order of `phones`.
    pub async fn pointings(&self) -> anyhow::Result<Vec<Pointing>> {
        let mut out = Vec::with_capacity(self.phones.len());
        for phone in &self.phones {
            out.push(self.pointing(phone).await?);
        }
        Ok(out)
    }

    /// Every phone's file, whole, in the order of `phones`.
    pub async fn bodies(&self) -> anyhow::Result<Vec<Vec<u8>>> {
        let mut out = Vec::with_capacity(self.phones.len());
        for phone in &self.phones {
            out.push(self.file(phone).await?.body);
        }
        Ok(out)
    }

    /// `POST /api/routes/{route}/{action}` with `Authorization: Bearer {token}` when a
    /// token is given and `body` as JSON when given; any status.
    pub async fn act(
        &self,
        route: &str,
        action: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> anyhow::Result<HttpResponse> {
        let url = self.url(&format!("/api/routes/{route}/{action}"));
        let mut request = self.client.post(&url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body.to_owned());
        }
        read(request.send().await.with_context(|| format!("POST {url}"))?).await
    }
}

/// `/api/status` as JSON, with accessors for what tests look at.
#[derive(Debug, Clone)]
pub struct Status(pub Value);

impl Status {
    pub fn generation(&self) -> u64 {
        self.0["generation"].as_u64().unwrap_or(0)
    }

    /// A field of a route (`state`, `active_site`, `mode`, `reason`…), `""` when missing.
    pub fn route(&self, route: &str, field: &str) -> String {
        self.0["routes"][route][field].as_str().unwrap_or_default().to_owned()
    }

    /// `(state, active_site, mode)` of a route.
    pub fn summary(&self, route: &str) -> (String, String, String) {
        (self.route(route, "state"), self.route(route, "active_site"), self.route(route, "mode"))
    }

    /// The entry of `services` for `role` (`primary`/`backup`) and `kind`.
    pub fn service(&self, role: &str, kind: &str) -> Option<&Value> {
        self.0["services"].as_array()?.iter().find(|s| s["role"] == role && s["kind"] == kind)
    }
}
