//! The probes against real peers (Kamailio, coturn, the machine's PostgreSQL and MariaDB,
//! SQLite files) and against misbehaving ones: up, refused, hung, and wrong answers.
//!
//! Every check goes through `probe::check` with a parsed config, as the scheduler calls it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test reports failure

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use switchback_core::{Config, Role, ServiceId, ServiceKind};
use switchback_monitor::{check, Outcome, ProbeSettings};
use switchback_tests::peers::{closed_port, Coturn, Kamailio, Responder, SipAnswer, Stray};
use switchback_tests::require;
use tokio::time::Instant;

/// Small, so the suite is fast; still far above loopback round trips.
const SETTINGS: ProbeSettings = ProbeSettings { timeout: Duration::from_millis(400), retries: 1 };
/// Scheduling slack on a machine busy with the rest of the workspace's tests.
const MARGIN: Duration = Duration::from_millis(150);

const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const MARIADB: &str = "mysql://root@127.0.0.1:3306/mysql";

// ---- helpers -----------------------------------------------------------------------------

fn softswitch(addr: SocketAddr, transport: &str) -> String {
    format!(r#"{{ host = "{}", port = {}, transport = "{transport}" }}"#, addr.ip(), addr.port())
}

fn stun(addr: SocketAddr) -> String {
    format!(r#"{{ host = "{}", port = {} }}"#, addr.ip(), addr.port())
}

fn database(url: &str) -> String {
    format!(r#"{{ url = "{url}" }}"#)
}

/// A valid config whose `service` is described by `table` (a TOML inline table); every
/// other service points somewhere harmless, since only `service` is probed.
fn config_for(service: ServiceId, table: &str) -> Config {
    let site = |role: Role| {
        let pick = |kind: ServiceKind, default: &str| {
            if service == ServiceId::new(role, kind) {
                table.to_owned()
            } else {
                default.to_owned()
            }
        };
        format!(
            "[[sites]]\nname = \"{role}-site\"\nrole = \"{role}\"\nsoftswitch = {}\ndatabase = {}\nstun = {}\n",
            pick(ServiceKind::Softswitch, r#"{ host = "127.0.0.1", port = 9 }"#),
            pick(ServiceKind::Database, r#"{ url = "sqlite://unused.db" }"#),
            pick(ServiceKind::Stun, r#"{ host = "127.0.0.1", port = 9 }"#),
        )
    };
    let text = format!("{}\n{}", site(Role::Primary), site(Role::Backup));
    Config::parse(&text).unwrap_or_else(|err| panic!("test config does not load: {err}\n{text}"))
}

/// Checks the primary's `kind` as configured by `table`; returns the outcome and its time.
async fn probe(kind: ServiceKind, table: &str) -> (Outcome, Duration) {
    probe_role(Role::Primary, kind, table).await
}

async fn probe_role(role: Role, kind: ServiceKind, table: &str) -> (Outcome, Duration) {
    let service = ServiceId::new(role, kind);
    let config = config_for(service, table);
    let start = Instant::now();
    let outcome = check(&config, service, &SETTINGS).await;
    (outcome, start.elapsed())
}

fn reason(outcome: &Outcome) -> String {
    match outcome {
        Ok(latency) => panic!("expected a failure, got healthy in {latency:?}"),
        Err(failure) => failure.to_string(),
    }
}

fn assert_healthy(outcome: &Outcome) {
    match outcome {
        Ok(latency) => assert!(*latency < SETTINGS.timeout, "latency {latency:?} beyond the timeout"),
        Err(failure) => panic!("expected healthy, got `{failure}`"),
    }
}

/// A hung peer costs every attempt its whole timeout, and not a moment more.
fn assert_hung(what: &str, outcome: &Outcome, elapsed: Duration) {
    eprintln!("{what}: failed with `{}` after {elapsed:?}", reason(outcome));
    assert_eq!(reason(outcome), "timeout", "{what}");
    let budget = SETTINGS.budget();
    assert!(elapsed >= budget, "{what}: gave up after {elapsed:?}, before the {budget:?} budget");
    assert!(elapsed <= budget + MARGIN, "{what}: took {elapsed:?}, beyond {budget:?} + {MARGIN:?}");
}

/// A refusal is known at once: no attempt waits for its timeout.
fn assert_refused(what: &str, outcome: &Outcome, elapsed: Duration) {
    assert_eq!(reason(outcome), "refused", "{what}");
    assert!(elapsed < SETTINGS.timeout, "{what}: refusal took {elapsed:?}");
}

/// The machine's database server at `addr`, if it listens.
fn machine_database(addr: &str) -> anyhow::Result<()> {
    let addr: SocketAddr = addr.parse()?;
    TcpStream::connect_timeout(&addr, Duration::from_secs(1))
        .map(drop)
        .map_err(|err| anyhow::anyhow!("nothing answers on {addr}: {err}"))
}

// ---- softswitch --------------------------------------------------------------------------

#[tokio::test]
async fn softswitch_up_over_udp_and_tcp() {
    let kamailio = require!(Kamailio::start(SipAnswer::Ok).await, "kamailio");
    for transport in ["udp", "tcp"] {
        let (outcome, _) = probe(ServiceKind::Softswitch, &softswitch(kamailio.addr(), transport)).await;
        assert!(outcome.is_ok(), "{transport}: {outcome:?}\n{}", kamailio.log());
        assert_healthy(&outcome);
    }
}

#[tokio::test]
async fn softswitch_of_the_backup_site_is_probed_at_the_backup() {
    let kamailio = require!(Kamailio::start(SipAnswer::Ok).await, "kamailio");
    let (outcome, _) =
        probe_role(Role::Backup, ServiceKind::Softswitch, &softswitch(kamailio.addr(), "udp")).await;
    assert_healthy(&outcome);
}

#[tokio::test]
async fn softswitch_answering_503_is_down() {
    let kamailio = require!(Kamailio::start(SipAnswer::Unavailable).await, "kamailio");
    for transport in ["udp", "tcp"] {
        let (outcome, _) = probe(ServiceKind::Softswitch, &softswitch(kamailio.addr(), transport)).await;
        assert_eq!(reason(&outcome), "status 503", "{transport}");
    }
}

#[tokio::test]
async fn softswitch_503_is_healthy_when_listed_in_healthy_codes() {
    let kamailio = require!(Kamailio::start(SipAnswer::Unavailable).await, "kamailio");
    let table = format!(
        r#"{{ host = "{}", port = {}, healthy_codes = [503] }}"#,
        kamailio.addr().ip(),
        kamailio.port()
    );
    let (outcome, _) = probe(ServiceKind::Softswitch, &table).await;
    assert_healthy(&outcome);
}

#[tokio::test]
async fn softswitch_refused_over_udp_and_tcp() {
    let nobody = closed_port().unwrap();
    for transport in ["udp", "tcp"] {
        let (outcome, elapsed) = probe(ServiceKind::Softswitch, &softswitch(nobody, transport)).await;
        assert_refused(transport, &outcome, elapsed);
    }
}

#[tokio::test]
async fn softswitch_hung_over_udp() {
    let silent = Responder::silent().await.unwrap();
    let (outcome, elapsed) = probe(ServiceKind::Softswitch, &softswitch(silent.addr(), "udp")).await;
    assert_hung("softswitch hung (udp)", &outcome, elapsed);
}

#[tokio::test]
async fn softswitch_hung_over_tcp() {
    let silent = Responder::silent().await.unwrap();
    let (outcome, elapsed) = probe(ServiceKind::Softswitch, &softswitch(silent.addr(), "tcp")).await;
    assert_hung("softswitch hung (tcp)", &outcome, elapsed);
}

#[tokio::test]
async fn softswitch_answering_another_branch_is_a_wrong_transaction() {
    let stray = Responder::stray_sip(Stray::Branch).await.unwrap();
    for transport in ["udp", "tcp"] {
        let (outcome, _) = probe(ServiceKind::Softswitch, &softswitch(stray.addr(), transport)).await;
        assert_eq!(reason(&outcome), "wrong transaction", "{transport}");
    }
}

#[tokio::test]
async fn softswitch_answering_another_call_id_is_a_wrong_transaction() {
    let stray = Responder::stray_sip(Stray::CallId).await.unwrap();
    for transport in ["udp", "tcp"] {
        let (outcome, _) = probe(ServiceKind::Softswitch, &softswitch(stray.addr(), transport)).await;
        assert_eq!(reason(&outcome), "wrong transaction", "{transport}");
    }
}

#[tokio::test]
async fn softswitch_answering_garbage_is_a_bad_response() {
    let garbage = Responder::garbage().await.unwrap();
    for transport in ["udp", "tcp"] {
        let (outcome, elapsed) = probe(ServiceKind::Softswitch, &softswitch(garbage.addr(), transport)).await;
        assert_eq!(reason(&outcome), "bad response", "{transport}");
        assert!(elapsed <= SETTINGS.budget() + MARGIN, "{transport}: took {elapsed:?}");
    }
}

#[tokio::test]
async fn softswitch_up_over_tls_with_a_self_signed_certificate() {
    let kamailio = require!(Kamailio::start_with_tls(SipAnswer::Ok).await, "kamailio with tls.so");
    let tls = kamailio.tls_addr().unwrap();
    let (outcome, _) = probe(ServiceKind::Softswitch, &softswitch(tls, "tls")).await;
    assert!(outcome.is_ok(), "{outcome:?}\n{}", kamailio.log());
    assert_healthy(&outcome);
}

#[tokio::test]
async fn softswitch_answering_503_over_tls_is_down() {
    let kamailio = require!(Kamailio::start_with_tls(SipAnswer::Unavailable).await, "kamailio with tls.so");
    let tls = kamailio.tls_addr().unwrap();
    let (outcome, _) = probe(ServiceKind::Softswitch, &softswitch(tls, "tls")).await;
    assert_eq!(reason(&outcome), "status 503", "{}", kamailio.log());
}

#[tokio::test]
async fn softswitch_speaking_plain_sip_on_a_tls_port_is_down() {
    let kamailio = require!(Kamailio::start(SipAnswer::Ok).await, "kamailio");
    let (outcome, elapsed) = probe(ServiceKind::Softswitch, &softswitch(kamailio.addr(), "tls")).await;
    let reason = reason(&outcome);
    eprintln!("plain SIP on a tls port: `{reason}` after {elapsed:?}");
    assert!(reason.starts_with("tls: ") || reason == "timeout", "{reason}");
    assert!(elapsed <= SETTINGS.budget() + MARGIN, "took {elapsed:?}");
}

#[tokio::test]
async fn softswitch_refused_and_hung_over_tls() {
    let (outcome, elapsed) = probe(ServiceKind::Softswitch, &softswitch(closed_port().unwrap(), "tls")).await;
    assert_refused("tls", &outcome, elapsed);
    let silent = Responder::silent().await.unwrap();
    let (outcome, elapsed) = probe(ServiceKind::Softswitch, &softswitch(silent.addr(), "tls")).await;
    assert_hung("softswitch hung (tls handshake)", &outcome, elapsed);
}

#[tokio::test]
async fn softswitch_with_an_unresolvable_name_fails_within_the_bound() {
    let table = r#"{ host = "sip1.switchback-test.invalid", port = 5060 }"#;
    let (outcome, elapsed) = probe(ServiceKind::Softswitch, table).await;
    let reason = reason(&outcome);
    assert!(reason.starts_with("cannot resolve") || reason == "timeout", "{reason}");
    assert!(elapsed <= SETTINGS.budget() + MARGIN, "took {elapsed:?}");
}

// ---- stun --------------------------------------------------------------------------------

#[tokio::test]
async fn stun_up() {
    let coturn = require!(Coturn::start().await, "coturn");
    let (outcome, _) = probe(ServiceKind::Stun, &stun(coturn.addr())).await;
    assert!(outcome.is_ok(), "{outcome:?}\n{}", coturn.log());
    assert_healthy(&outcome);
}

#[tokio::test]
async fn stun_refused() {
    let (outcome, elapsed) = probe(ServiceKind::Stun, &stun(closed_port().unwrap())).await;
    assert_refused("stun", &outcome, elapsed);
}

#[tokio::test]
async fn stun_hung() {
    let silent = Responder::silent().await.unwrap();
    let (outcome, elapsed) = probe(ServiceKind::Stun, &stun(silent.addr())).await;
    assert_hung("stun hung", &outcome, elapsed);
}

#[tokio::test]
async fn stun_answering_another_transaction_id_is_a_wrong_transaction() {
    let stray = Responder::stray_stun().await.unwrap();
    let (outcome, _) = probe(ServiceKind::Stun, &stun(stray.addr())).await;
    assert_eq!(reason(&outcome), "wrong transaction");
}

#[tokio::test]
async fn stun_answering_garbage_is_a_bad_response() {
    let garbage = Responder::garbage().await.unwrap();
    let (outcome, _) = probe(ServiceKind::Stun, &stun(garbage.addr())).await;
    assert_eq!(reason(&outcome), "bad response");
}

// ---- database ----------------------------------------------------------------------------

#[tokio::test]
async fn postgres_up() {
    require!(machine_database("127.0.0.1:5432"), "PostgreSQL on 127.0.0.1:5432");
    for url in [POSTGRES, "postgresql://postgres@127.0.0.1:5432/postgres"] {
        let (outcome, _) = probe(ServiceKind::Database, &database(url)).await;
        assert_healthy(&outcome);
    }
}

#[tokio::test]
async fn mariadb_up_as_mysql_and_mariadb_urls() {
    require!(machine_database("127.0.0.1:3306"), "MariaDB on 127.0.0.1:3306");
    for url in [MARIADB, "mariadb://root@127.0.0.1:3306/mysql"] {
        let (outcome, _) = probe(ServiceKind::Database, &database(url)).await;
        assert_healthy(&outcome);
    }
}

#[tokio::test]
async fn databases_refused() {
    let nobody = closed_port().unwrap();
    for scheme in ["postgres", "mysql"] {
        let url = format!("{scheme}://monitor:pw@{nobody}/voip");
        let (outcome, elapsed) = probe(ServiceKind::Database, &database(&url)).await;
        assert_refused(scheme, &outcome, elapsed);
    }
}

#[tokio::test]
async fn postgres_hung() {
    let silent = Responder::silent().await.unwrap();
    let url = format!("postgres://monitor@{}/voip", silent.addr());
    let (outcome, elapsed) = probe(ServiceKind::Database, &database(&url)).await;
    assert_hung("postgres hung", &outcome, elapsed);
}

#[tokio::test]
async fn mysql_hung() {
    let silent = Responder::silent().await.unwrap();
    let url = format!("mysql://monitor@{}/voip", silent.addr());
    let (outcome, elapsed) = probe(ServiceKind::Database, &database(&url)).await;
    assert_hung("mysql hung", &outcome, elapsed);
}

#[tokio::test]
async fn mariadb_bad_password_is_an_error_without_the_password() {
    require!(machine_database("127.0.0.1:3306"), "MariaDB on 127.0.0.1:3306");
    let url = "mysql://root:Wr0ngSecret@127.0.0.1:3306/mysql";
    let (outcome, _) = probe(ServiceKind::Database, &database(url)).await;
    let reason = reason(&outcome);
    assert!(reason.contains("Access denied"), "{reason}");
    assert!(!reason.contains("Wr0ngSecret"), "{reason}");
}

#[tokio::test]
async fn postgres_unknown_database_or_role_is_an_error_without_the_password() {
    require!(machine_database("127.0.0.1:5432"), "PostgreSQL on 127.0.0.1:5432");
    let url = "postgres://postgres@127.0.0.1:5432/switchback_no_such_db";
    let (outcome, _) = probe(ServiceKind::Database, &database(url)).await;
    let missing_db = reason(&outcome);
    assert!(
        missing_db.contains("switchback_no_such_db") && missing_db.contains("does not exist"),
        "{missing_db}"
    );

    let url = "postgres://switchback_no_such_role:Wr0ngSecret@127.0.0.1:5432/postgres";
    let (outcome, _) = probe(ServiceKind::Database, &database(url)).await;
    let missing_role = reason(&outcome);
    assert!(missing_role.contains("switchback_no_such_role"), "{missing_role}");
    assert!(!missing_role.contains("Wr0ngSecret"), "{missing_role}");
}

#[tokio::test]
async fn sqlite_file_present_is_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("voip.db");
    // A zero-length file is a valid, empty SQLite database.
    std::fs::File::create(&path).unwrap();
    let (outcome, _) = probe(ServiceKind::Database, &database(&format!("sqlite://{}", path.display()))).await;
    assert_healthy(&outcome);
}

#[tokio::test]
async fn sqlite_file_missing_is_down_and_stays_missing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("voip.db");
    for url in [format!("sqlite://{}", path.display()), format!("sqlite://{}?mode=rwc", path.display())] {
        let (outcome, _) = probe(ServiceKind::Database, &database(&url)).await;
        assert_eq!(reason(&outcome), "unable to open database file", "{url}");
        assert!(!path.exists(), "the probe created {}", path.display());
    }
}
