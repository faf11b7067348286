//! `switchback check` end to end: the real binary against real Kamailio, coturn,
//! PostgreSQL and MariaDB (the databases through a proxy when they must look refused or
//! hung), judged by its exit code, its table and how long it takes.
//!
//! Exit codes (README): 0 every primary service up, 1 a primary service down, 2 a bad
//! config or another error.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test reports failure

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::time::Duration;

use switchback_tests::databases::{mariadb_url, postgres_url};
use switchback_tests::peers::{closed_port, loopback_ip, Coturn, Kamailio, SipAnswer};
use switchback_tests::proxy::Proxy;
use switchback_tests::require;
use switchback_tests::switchback::{check, CheckRun, ConfigBuilder, SiteAddrs};

const BINARY: &str = env!("CARGO_BIN_EXE_switchback");
/// Process start, config parsing and a loaded machine, on top of the probes' own budget.
const SLACK: Duration = Duration::from_secs(2);

/// One site's servers, kept running for as long as the test holds this.
#[derive(Debug)]
struct Site {
    addrs: SiteAddrs,
    _kamailio: Kamailio,
    _coturn: Option<Coturn>,
    _proxy: Option<Proxy>,
}

/// How a broken site's database fails.
#[derive(Debug, Clone, Copy)]
enum DbFault {
    /// Behind a hung proxy: `timeout`.
    Hang,
    /// Behind a cut proxy: `refused`.
    Cut,
}

/// Kamailio answering OPTIONS with 200, coturn, and the database at `database_url`.
async fn healthy_site(database_url: &str) -> anyhow::Result<Site> {
    let (kamailio, coturn) = tokio::try_join!(Kamailio::start(SipAnswer::Ok), Coturn::start())?;
    Ok(Site {
        addrs: SiteAddrs::new(kamailio.addr(), database_url, coturn.addr()),
        _kamailio: kamailio,
        _coturn: Some(coturn),
        _proxy: None,
    })
}

/// Kamailio answering 503, nothing listening for STUN, and the real database at
/// `database_url` behind a proxy that fails as `fault` says.
async fn broken_site(database_url: &str, fault: DbFault) -> anyhow::Result<Site> {
    let kamailio = Kamailio::start(SipAnswer::Unavailable).await?;
    let proxy = Proxy::in_front_of(database_url).await?;
    match fault {
        DbFault::Hang => proxy.hang().await?,
        DbFault::Cut => proxy.cut().await?,
    }
    Ok(Site {
        addrs: SiteAddrs::new(kamailio.addr(), proxy.url(database_url)?, closed_port()?),
        _kamailio: kamailio,
        _coturn: None,
        _proxy: Some(proxy),
    })
}

fn show(what: &str, run: &CheckRun) {
    eprintln!(
        "---- {what}: exit {:?} after {:?}\n{}---- stderr:\n{}",
        run.code, run.elapsed, run.stdout, run.stderr
    );
}

/// The header names the five columns, and there is one row per service.
fn assert_table(run: &CheckRun) {
    let header = run.stdout.lines().next().unwrap_or_default();
    for column in ["SITE", "SERVICE", "HEALTHY", "LATENCY", "REASON"] {
        assert!(header.contains(column), "no {column} in the header `{header}`");
    }
    let rows = run.rows().unwrap();
    assert_eq!(rows.len(), 6, "{}", run.stdout);
    for role in ["primary", "backup"] {
        for service in ["softswitch", "database", "stun"] {
            run.row(role, service).unwrap();
        }
    }
}

/// The row is healthy, with a latency in milliseconds and no reason.
fn assert_up(run: &CheckRun, role: &str, service: &str) {
    let row = run.row(role, service).unwrap();
    assert!(row.healthy, "{role} {service} is not healthy: {row:?}");
    assert!(row.latency.ends_with(" ms"), "{role} {service} latency `{}`", row.latency);
    assert_eq!(row.reason, "", "{role} {service}");
}

/// The row is down, with no latency and `reason`.
fn assert_down(run: &CheckRun, role: &str, service: &str, reason: &str) {
    let row = run.row(role, service).unwrap();
    assert!(!row.healthy, "{role} {service} is healthy: {row:?}");
    assert_eq!(row.latency, "-", "{role} {service}");
    assert_eq!(row.reason, reason, "{role} {service}");
}

#[tokio::test]
async fn all_six_healthy_exits_0() {
    let (pg, maria) =
        (require!(postgres_url().await, "postgresql"), require!(mariadb_url().await, "mariadb"));
    let (primary, backup) =
        require!(tokio::try_join!(healthy_site(&pg), healthy_site(&maria)), "kamailio and coturn");
    let config = ConfigBuilder::new(primary.addrs.clone(), backup.addrs.clone()).write().unwrap();

    let run = check(BINARY, config.path()).await.unwrap();
    show("all six healthy", &run);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_table(&run);
    for role in ["primary", "backup"] {
        for service in ["softswitch", "database", "stun"] {
            assert_up(&run, role, service);
        }
    }
    let sites: Vec<(String, String)> =
        run.rows().unwrap().into_iter().map(|row| (row.site, row.role)).collect();
    assert!(sites.contains(&("chicago".into(), "primary".into())), "{sites:?}");
    assert!(sites.contains(&("virginia".into(), "backup".into())), "{sites:?}");
}

#[tokio::test]
async fn broken_primary_exits_1_with_each_reason_within_the_probe_budget() {
    let (pg, maria) =
        (require!(postgres_url().await, "postgresql"), require!(mariadb_url().await, "mariadb"));
    let (primary, backup) = require!(
        tokio::try_join!(broken_site(&pg, DbFault::Hang), healthy_site(&maria)),
        "kamailio and coturn"
    );
    let builder = ConfigBuilder::new(primary.addrs.clone(), backup.addrs.clone());
    let config = builder.write().unwrap();

    let run = check(BINARY, config.path()).await.unwrap();
    show("broken primary (503, nothing on STUN, hung database)", &run);
    eprintln!(
        "check with a hung database took {:?} (probe budget {:?} = timeout 300ms x (retries 1 + 1))",
        run.elapsed,
        builder.budget()
    );
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert_table(&run);
    assert_down(&run, "primary", "softswitch", "status 503");
    assert_down(&run, "primary", "stun", "refused");
    assert_down(&run, "primary", "database", "timeout");
    for service in ["softswitch", "database", "stun"] {
        assert_up(&run, "backup", service);
    }
    // The hung database costs every attempt its timeout, and the whole command no more.
    assert!(run.elapsed >= builder.budget(), "gave up on the hung database after {:?}", run.elapsed);
    assert!(
        run.elapsed < builder.budget() + SLACK,
        "check took {:?}, beyond {:?} + {SLACK:?}",
        run.elapsed,
        builder.budget()
    );
}

#[tokio::test]
async fn backup_only_outage_exits_0() {
    let (pg, maria) =
        (require!(postgres_url().await, "postgresql"), require!(mariadb_url().await, "mariadb"));
    let (primary, backup) = require!(
        tokio::try_join!(healthy_site(&pg), broken_site(&maria, DbFault::Cut)),
        "kamailio and coturn"
    );
    let config = ConfigBuilder::new(primary.addrs.clone(), backup.addrs.clone()).write().unwrap();

    let run = check(BINARY, config.path()).await.unwrap();
    show("backup-only outage (503, nothing on STUN, database cut)", &run);
    assert_eq!(run.code, Some(0), "a backup outage is not a primary one: {}", run.stderr);
    assert_table(&run);
    for service in ["softswitch", "database", "stun"] {
        assert_up(&run, "primary", service);
    }
    assert_down(&run, "backup", "softswitch", "status 503");
    assert_down(&run, "backup", "stun", "refused");
    assert_down(&run, "backup", "database", "refused");
}

/// A UDP socket and a TCP listener on one address that only record whether anything
/// reached them: a probe sent here would be seen.
#[derive(Debug)]
struct Tripwire {
    addr: SocketAddr,
    udp: UdpSocket,
    tcp: TcpListener,
}

impl Tripwire {
    fn new() -> Self {
        let udp = UdpSocket::bind((loopback_ip(), 0)).unwrap();
        let addr = udp.local_addr().unwrap();
        let tcp = TcpListener::bind(addr).unwrap();
        udp.set_nonblocking(true).unwrap();
        tcp.set_nonblocking(true).unwrap();
        Self { addr, udp, tcp }
    }

    /// Whether a datagram or a connection arrived. Loopback delivers both before the
    /// sender's call returns, so after the sender has exited, nothing more can come.
    fn tripped(&self) -> bool {
        let mut buf = [0u8; 1];
        self.udp.peek_from(&mut buf).is_ok() || self.tcp.accept().is_ok()
    }
}

#[tokio::test]
async fn bad_config_exits_2_naming_the_key_and_probes_nothing() {
    let wires: Vec<Tripwire> = (0..6).map(|_| Tripwire::new()).collect();
    let site =
        |w: &[Tripwire]| SiteAddrs::new(w[0].addr, format!("mysql://root@{}/voip", w[1].addr), w[2].addr);
    let builder = ConfigBuilder::new(site(&wires[..3]), site(&wires[3..]));
    let cases: [(&str, &str, &str, &[&str]); 2] = [
        ("unknown key", "retries = 1\n", "retries = 1\nretry_delay = \"1s\"\n", &["`monitor.retry_delay`"]),
        ("two primaries", "role = \"backup\"", "role = \"primary\"", &["`sites`", "role = \"primary\""]),
    ];
    for (what, from, to, named) in cases {
        let config = builder.write().unwrap();
        let text = config.text();
        assert!(text.contains(from), "{what}: `{from}` not in the config");
        config.rewrite(&text.replacen(from, to, 1)).unwrap();

        let run = check(BINARY, config.path()).await.unwrap();
        show(what, &run);
        assert_eq!(run.code, Some(2), "{what}");
        for name in named.iter().copied() {
            assert!(run.stderr.contains(name), "{what}: stderr does not name `{name}`: {}", run.stderr);
        }
        assert_eq!(run.stdout, "", "{what}: printed something besides the error");
        assert!(!config.store_path().exists(), "{what}: a store was created");
        for wire in &wires {
            assert!(!wire.tripped(), "{what}: something was probed at {}", wire.addr);
        }
    }
}
