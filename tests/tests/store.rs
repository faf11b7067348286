//! The store on both backends: each scenario runs on a fresh SQLite file and on a fresh
//! database on the machine's PostgreSQL (`<scenario>::sqlite`, `<scenario>::postgres`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test reports failure

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use switchback_core::engine::{Event, EventKind, MONITOR_ACTOR};
use switchback_core::{CheckResult, EngineState, Mode, Role, Route, RouteState, ServiceId, ServiceKind};
use switchback_store::{connect, Backend, Store, StoreError};
use switchback_tests::databases::{fresh_postgres, StoreDb};
use switchback_tests::require;

/// Runs each scenario `async fn(StoreDb)` on both backends.
macro_rules! on_both_backends {
    ($($scenario:ident),+ $(,)?) => {$(
        mod $scenario {
            #[tokio::test]
            async fn sqlite() {
                super::$scenario(switchback_tests::databases::StoreDb::sqlite().unwrap()).await;
            }

            #[tokio::test]
            async fn postgres() {
                let db = switchback_tests::require!(
                    switchback_tests::databases::StoreDb::postgres().await,
                    "postgresql"
                );
                super::$scenario(db).await;
            }
        }
    )+};
}

on_both_backends!(
    fresh_store_has_no_state,
    mid_failover_state_round_trips,
    state_survives_a_restart,
    events_page_newest_first,
    recent_checks_newest_first,
    prune_drops_only_old_checks,
    failed_step_leaves_earlier_state,
    migrations_are_idempotent,
    corrupt_enum_is_named,
    concurrent_writers_all_land,
    phones_import_adds_then_updates,
    prov_password_round_trips,
    import_without_prov_password_stores_null,
    fetches_fold_into_each_phones_latest,
    a_large_fetch_batch_lands_whole,
    only_an_existing_store_opens_without_create,
    phone_page_filters_and_pages_in_mac_order,
    phones_are_removed_all_or_none,
    first_fetches_of_each_generation_make_its_convergence,
    events_since_oldest_first,
    a_store_opened_to_read_is_never_migrated,
);

/// `connect_existing` (what `run` without `--init` uses) refuses a store that was never
/// created, creates nothing, and opens one that was.
async fn only_an_existing_store_opens_without_create(db: StoreDb) {
    let refused = switchback_store::connect_existing(&db.url()).await.unwrap_err();
    assert!(matches!(refused, StoreError::Missing { .. }), "{refused}");
    assert!(refused.to_string().contains("--init"), "{refused}");
    if let StoreDb::Sqlite(file) = &db {
        assert!(!file.path().exists(), "nothing was created");
    }
    let refused_again = switchback_store::connect_existing(&db.url()).await.unwrap_err();
    assert!(matches!(refused_again, StoreError::Missing { .. }), "a refusal leaves nothing behind");
    connect(&db.url()).await.unwrap().close().await;
    let store = switchback_store::connect_existing(&db.url()).await.unwrap();
    assert_eq!(store.load_state().await.unwrap(), None);
    store.close().await;
}

// ---- helpers -------------------------------------------------------------------------------

/// Whole milliseconds, well inside the microsecond the store keeps.
fn at(secs: i64, millis: u32) -> DateTime<Utc> {
    Utc.timestamp_opt(1_795_000_000 + secs, millis * 1_000_000).unwrap()
}

const PSW: ServiceId = ServiceId { role: Role::Primary, kind: ServiceKind::Softswitch };
const PDB: ServiceId = ServiceId { role: Role::Primary, kind: ServiceKind::Database };
const BST: ServiceId = ServiceId { role: Role::Backup, kind: ServiceKind::Stun };

async fn open(db: &StoreDb) -> Arc<dyn Store> {
    connect(&db.url()).await.unwrap_or_else(|err| panic!("connect: {err:#}"))
}

/// A state with every field set away from its default: `sip` forced over to the backup
/// with both sites down, `stun` recovering, the monitor blind, tracks mid-run.
fn mid_failover() -> EngineState {
    let mut state = EngineState::new(at(0, 0));
    let sip = state.routes.get_mut(&Route::Sip).unwrap();
    sip.state = RouteState::FailedOver;
    sip.active = Role::Backup;
    sip.since = at(120, 250);
    sip.reason = "operator forced failover: \"maintenance\" ✓".to_owned();
    sip.mode = Mode::Forced;
    state.generation = 42;
    sip.both_down = true;
    sip.failback_ready = true;
    let stun = state.routes.get_mut(&Route::Stun).unwrap();
    stun.state = RouteState::Recovering;
    stun.since = at(130, 1);
    stun.mode = Mode::Paused;
    let psw = state.services.get_mut(&PSW).unwrap();
    psw.healthy = Some(false);
    psw.checked_at = Some(at(140, 999));
    psw.reason = Some("timeout".to_owned());
    psw.failing_since = Some(at(60, 5));
    let bst = state.services.get_mut(&BST).unwrap();
    bst.healthy = Some(true);
    bst.checked_at = Some(at(140, 7));
    bst.latency_ms = Some(12);
    bst.healthy_since = Some(at(10, 0));
    bst.failing_since = Some(at(5, 0));
    state.blind = true;
    state
}

fn event(n: i64) -> Event {
    Event {
        at: at(n, 0),
        kind: if n % 2 == 0 { EventKind::Transition } else { EventKind::ServiceDown },
        route: (n % 2 == 0).then_some(Route::Sip),
        service: (n % 2 == 1).then_some(PDB),
        from: (n % 2 == 0).then_some(RouteState::Failing),
        to: (n % 2 == 0).then_some(RouteState::FailedOver),
        active: (n % 2 == 0).then_some(Role::Backup),
        reason: format!("event {n}"),
        actor: MONITOR_ACTOR.to_owned(),
    }
}

fn check(service: ServiceId, secs: i64, healthy: bool) -> CheckResult {
    if healthy {
        CheckResult::healthy(service, Duration::from_millis(3 + secs as u64), at(secs, 0))
    } else {
        CheckResult::failed(service, format!("status 503 at {secs}"), at(secs, 0))
    }
}

// ---- scenarios -----------------------------------------------------------------------------

async fn fresh_store_has_no_state(db: StoreDb) {
    let store = open(&db).await;
    store.ping().await.unwrap();
    assert_eq!(store.load_state().await.unwrap(), None);
    assert!(store.events(None, 10).await.unwrap().is_empty());
    assert!(store.recent_checks(PSW, 10).await.unwrap().is_empty());
    let expected = if db.url().starts_with("sqlite") { Backend::Sqlite } else { Backend::Postgres };
    assert_eq!(store.backend(), expected);
}

async fn mid_failover_state_round_trips(db: StoreDb) {
    let store = open(&db).await;
    let state = mid_failover();
    assert_eq!(store.save_step(&state, &[], &[]).await.unwrap(), Vec::<i64>::new());
    assert_eq!(store.load_state().await.unwrap().as_ref(), Some(&state));

    // A later step overwrites every field, including back to None and false.
    let later = EngineState::new(at(500, 0));
    store.save_step(&later, &[], &[]).await.unwrap();
    assert_eq!(store.load_state().await.unwrap(), Some(later));
}

async fn state_survives_a_restart(db: StoreDb) {
    let state = mid_failover();
    let store = open(&db).await;
    let ids = store.save_step(&state, &[check(PSW, 140, false)], &[event(1)]).await.unwrap();
    store.close().await;
    drop(store);

    let store = open(&db).await;
    assert_eq!(store.load_state().await.unwrap(), Some(state));
    assert_eq!(store.recent_checks(PSW, 5).await.unwrap(), vec![check(PSW, 140, false)]);
    let events = store.events(None, 5).await.unwrap();
    assert_eq!(events.iter().map(|e| e.id).collect::<Vec<_>>(), ids);
    assert_eq!(events[0].event, event(1));
}

async fn events_page_newest_first(db: StoreDb) {
    let store = open(&db).await;
    let state = EngineState::new(at(0, 0));
    let mut ids = Vec::new();
    for round in 0..5 {
        let batch: Vec<Event> = (round * 5..round * 5 + 5).map(event).collect();
        let got = store.save_step(&state, &[], &batch).await.unwrap();
        assert_eq!(got.len(), 5);
        ids.extend(got);
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase in insertion order: {ids:?}");

    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = store.events(before, 10).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 10);
        before = page.last().map(|e| e.id);
        seen.extend(page);
    }
    let newest_first: Vec<i64> = ids.iter().rev().copied().collect();
    assert_eq!(seen.iter().map(|e| e.id).collect::<Vec<_>>(), newest_first);
    let expected: Vec<Event> = (0..25).rev().map(event).collect();
    assert_eq!(seen.into_iter().map(|e| e.event).collect::<Vec<_>>(), expected);
    assert_eq!(store.events(Some(ids[0]), 10).await.unwrap(), vec![]);
}

async fn recent_checks_newest_first(db: StoreDb) {
    let store = open(&db).await;
    let state = EngineState::new(at(0, 0));
    for secs in 0..6 {
        let round = [check(PSW, secs, secs % 2 == 0), check(PDB, secs, true)];
        store.save_step(&state, &round, &[]).await.unwrap();
    }
    let got = store.recent_checks(PSW, 3).await.unwrap();
    assert_eq!(got, vec![check(PSW, 5, false), check(PSW, 4, true), check(PSW, 3, false)]);
    assert_eq!(got[1].latency, Some(Duration::from_millis(7)));
    assert_eq!(store.recent_checks(PDB, 100).await.unwrap().len(), 6);
    assert!(store.recent_checks(BST, 100).await.unwrap().is_empty());
    assert!(store.recent_checks(PSW, 0).await.unwrap().is_empty());
}

async fn prune_drops_only_old_checks(db: StoreDb) {
    let store = open(&db).await;
    let state = EngineState::new(at(0, 0));
    let round: Vec<CheckResult> = (0..10).map(|secs| check(PSW, secs, true)).collect();
    store.save_step(&state, &round, &[event(1)]).await.unwrap();

    assert_eq!(store.prune_checks(at(5, 0)).await.unwrap(), 5);
    let left = store.recent_checks(PSW, 100).await.unwrap();
    assert_eq!(left, (5..10).rev().map(|secs| check(PSW, secs, true)).collect::<Vec<_>>());
    assert_eq!(store.prune_checks(at(5, 0)).await.unwrap(), 0);
    // Pruning checks leaves the state and the event history alone.
    assert_eq!(store.load_state().await.unwrap(), Some(state));
    assert_eq!(store.events(None, 10).await.unwrap().len(), 1);
}

/// A trigger makes the second event of a step fail after the state, the checks and the
/// first event were written: none of them may remain.
async fn failed_step_leaves_earlier_state(db: StoreDb) {
    let store = open(&db).await;
    let before = EngineState::new(at(0, 0));
    store.save_step(&before, &[check(PSW, 0, true)], &[event(0)]).await.unwrap();

    let trigger = match &db {
        StoreDb::Sqlite(_) => {
            "CREATE TRIGGER reject_boom BEFORE INSERT ON events WHEN NEW.reason = 'boom' \
             BEGIN SELECT RAISE(ABORT, 'boom rejected'); END;"
        }
        StoreDb::Postgres(_) => {
            "CREATE FUNCTION reject_boom() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF NEW.reason = 'boom' THEN RAISE EXCEPTION 'boom rejected'; END IF; RETURN NEW; END $$; \
             CREATE TRIGGER reject_boom BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION reject_boom();"
        }
    };
    db.exec(trigger).await.unwrap();

    let mut boom = event(2);
    boom.reason = "boom".to_owned();
    let err = store.save_step(&mid_failover(), &[check(PSW, 9, false)], &[event(1), boom]).await.unwrap_err();
    assert!(matches!(err, StoreError::Query { what: "insert event", .. }), "{err:?}");

    assert_eq!(store.load_state().await.unwrap(), Some(before.clone()));
    assert_eq!(store.recent_checks(PSW, 10).await.unwrap(), vec![check(PSW, 0, true)]);
    let events = store.events(None, 10).await.unwrap();
    assert_eq!(events.into_iter().map(|e| e.event).collect::<Vec<_>>(), vec![event(0)]);

    // The store is still usable after the rollback.
    store.save_step(&mid_failover(), &[], &[event(3)]).await.unwrap();
    assert_eq!(store.load_state().await.unwrap(), Some(mid_failover()));
}

async fn migrations_are_idempotent(db: StoreDb) {
    let state = mid_failover();
    open(&db).await.save_step(&state, &[], &[event(1)]).await.unwrap();
    for _ in 0..2 {
        let store = open(&db).await;
        assert_eq!(store.load_state().await.unwrap().as_ref(), Some(&state));
        store.close().await;
    }
    // Two instances starting at once (several over one PostgreSQL) both come up.
    let url = db.url();
    let (a, b) = tokio::join!(connect(&url), connect(&url));
    a.unwrap();
    b.unwrap();
}

async fn corrupt_enum_is_named(db: StoreDb) {
    let store = open(&db).await;
    store.save_step(&EngineState::new(at(0, 0)), &[], &[event(0)]).await.unwrap();
    db.exec("UPDATE route_states SET state = 'sideways' WHERE route = 'stun'").await.unwrap();
    let err = store.load_state().await.unwrap_err();
    assert!(matches!(&err, StoreError::Corrupt { table: "route_states", column: "state", .. }), "{err:?}");
    assert!(err.to_string().contains("sideways"), "{err}");

    db.exec("UPDATE events SET active = 'moon'").await.unwrap();
    let err = store.events(None, 10).await.unwrap_err();
    assert!(matches!(&err, StoreError::Corrupt { table: "events", column: "active", .. }), "{err:?}");
}

/// Two instances writing at once (a restart overlapping the old process, or a second
/// instance on one PostgreSQL) wait for each other instead of failing.
async fn concurrent_writers_all_land(db: StoreDb) {
    let (a, b) = (open(&db).await, open(&db).await);
    let write = |store: Arc<dyn Store>, base: i64| async move {
        for n in 0..20 {
            let round = [check(PSW, base + n, true)];
            store.save_step(&mid_failover(), &round, &[event(base + n)]).await.unwrap();
        }
    };
    tokio::join!(write(a.clone(), 0), write(b, 100));
    assert_eq!(a.events(None, 100).await.unwrap().len(), 40);
    assert_eq!(a.recent_checks(PSW, 100).await.unwrap().len(), 40);
}

#[tokio::test]
async fn sqlite_file_is_created_in_wal_mode() {
    let db = switchback_tests::databases::TempSqlite::new().unwrap();
    assert!(!db.path().exists());
    let store = connect(&db.url()).await.unwrap();
    store.save_step(&mid_failover(), &[], &[]).await.unwrap();
    let header = std::fs::read(db.path()).unwrap();
    // Bytes 18 and 19 of a SQLite file are its read and write format: 2 means WAL.
    assert_eq!(&header[18..20], &[2, 2]);
}

/// The store holds SIP and provisioning passwords: its file, `-wal` and `-shm` are the
/// owner's alone, whatever the umask.
#[tokio::test]
async fn sqlite_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let db = switchback_tests::databases::TempSqlite::new().unwrap();
    let store = connect(&db.url()).await.unwrap();
    store.save_step(&mid_failover(), &[], &[event(1)]).await.unwrap();
    // While the store is open, SQLite keeps the -wal and -shm files beside it.
    for suffix in ["", "-wal", "-shm"] {
        let path = format!("{}{suffix}", db.path().display());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600, "{path}: {mode:o}");
    }
    store.close().await;
}

#[tokio::test]
async fn a_sqlite_file_readable_by_others_is_narrowed_at_open() {
    use std::os::unix::fs::PermissionsExt;
    let db = switchback_tests::databases::TempSqlite::new().unwrap();
    let store = connect(&db.url()).await.unwrap();
    store.save_step(&mid_failover(), &[], &[]).await.unwrap();
    store.close().await;
    drop(store);
    let mode = |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o7777;
    std::fs::set_permissions(db.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(mode(db.path()), 0o644);

    let store = connect(&db.url()).await.unwrap();
    assert_eq!(mode(db.path()), 0o600);
    assert_eq!(store.load_state().await.unwrap(), Some(mid_failover()), "the data is kept");
}

// ---- connecting ----------------------------------------------------------------------------

#[tokio::test]
async fn unknown_scheme_is_named_without_the_password() {
    let err = connect("mysql://monitor:hunter2@127.0.0.1:3306/voip").await.unwrap_err();
    assert!(matches!(&err, StoreError::UnsupportedScheme { scheme } if scheme == "mysql"), "{err:?}");
    let text = format!("{err} {err:?}");
    assert!(text.contains("mysql") && !text.contains("hunter2"), "{text}");

    let err = connect("switchback.db").await.unwrap_err();
    assert!(matches!(err, StoreError::BadUrl { .. }), "{err:?}");
}

#[tokio::test]
async fn in_memory_sqlite_keeps_state_while_open() {
    let store = connect("sqlite::memory:").await.unwrap();
    let state = mid_failover();
    store.save_step(&state, &[], &[event(1)]).await.unwrap();
    assert_eq!(store.load_state().await.unwrap(), Some(state));
}

#[tokio::test]
async fn connect_errors_never_show_the_password() {
    // Nothing listens on port 1.
    let err = connect("postgres://sb:hunter2@127.0.0.1:1/switchback").await.unwrap_err();
    assert!(matches!(err, StoreError::Connect { .. }), "{err:?}");
    let text = format!("{err} {err:?}");
    assert!(!text.contains("hunter2") && text.contains("***"), "{text}");
    assert!(text.to_lowercase().contains("refused"), "the driver's reason is kept: {text}");

    let pg = require!(fresh_postgres().await, "postgresql");
    // Trust authentication ignores the password, so the connection succeeds ...
    let with_password = pg.url().replacen("postgres@", "postgres:hunter2@", 1);
    let store = connect(&with_password).await.unwrap();
    assert!(!format!("{store:?}").contains("hunter2"), "{store:?}");
    store.close().await;
    // ... and a missing database fails, naming neither the password.
    let missing = with_password.replace(pg.name(), "sbtest_no_such_database");
    let err = connect(&missing).await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(matches!(err, StoreError::Connect { .. }) && !text.contains("hunter2"), "{text}");
}

// ---- the harness ---------------------------------------------------------------------------

#[tokio::test]
async fn mariadb_databases_come_and_go() {
    let url = require!(switchback_tests::databases::mariadb_url().await, "mariadb");
    let db = switchback_tests::databases::fresh_mariadb().await.unwrap();
    db.exec_sql("CREATE TABLE t (x INT); INSERT INTO t VALUES (1)").await.unwrap();
    let name = db.name().to_owned();
    drop(db);
    let gone = format!("USE {name}");
    assert!(switchback_tests::databases::exec(&url, &gone).await.is_err(), "{name} was not dropped");
}

// ---- phones ----------------------------------------------------------------------------------

fn phone(mac: &str, vendor: switchback_provisioning::Vendor, name: &str) -> switchback_provisioning::Phone {
    switchback_provisioning::Phone {
        mac: mac.parse().unwrap(),
        vendor,
        model: "T46S".to_owned(),
        display_name: name.to_owned(),
        user_id: "1001".to_owned(),
        auth_id: String::new(),
        password: "pw-1001".to_owned().into(),
        prov_password: None,
    }
}

/// How many phones have `prov_password` NULL in the table itself, read past the store.
async fn null_prov_passwords(db: &StoreDb) -> i64 {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&db.url()).await.unwrap();
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM phones WHERE prov_password IS NULL")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    count
}

async fn phones_import_adds_then_updates(db: StoreDb) {
    use secrecy::ExposeSecret;
    use switchback_provisioning::Vendor;
    let store = open(&db).await;
    assert_eq!(store.phones_revision().await.unwrap().count, 0);
    let first =
        [phone("001565000001", Vendor::Yealink, "Lobby"), phone("001565000002", Vendor::Linksys, "Desk")];
    let report = store.import_phones(&first).await.unwrap();
    assert_eq!((report.added, report.updated), (2, 0));
    let before = store.phones_revision().await.unwrap();

    let second = [
        phone("001565000002", Vendor::Linksys, "Front desk"),
        phone("001565000003", Vendor::Yealink, "Hall"),
    ];
    let report = store.import_phones(&second).await.unwrap();
    assert_eq!((report.added, report.updated), (1, 1));
    assert_ne!(store.phones_revision().await.unwrap(), before, "an import changes the revision");

    let phones = store.phones().await.unwrap();
    let names: Vec<_> = phones.iter().map(|p| (p.mac.to_string(), p.display_name.as_str())).collect();
    assert_eq!(
        names,
        [
            ("001565000001".to_owned(), "Lobby"),
            ("001565000002".to_owned(), "Front desk"),
            ("001565000003".to_owned(), "Hall")
        ]
    );
    assert_eq!(phones[1].vendor, Vendor::Linksys);
    assert_eq!(phones[1].password.expose_secret(), "pw-1001");
}

async fn prov_password_round_trips(db: StoreDb) {
    use secrecy::ExposeSecret;
    use switchback_provisioning::Vendor;
    let store = open(&db).await;
    let mut with = phone("001565000001", Vendor::Yealink, "Lobby");
    with.prov_password = Some("Xk4-9qZ_r!~%^*()+=,;:?@{}/ünï".to_owned().into());
    let without = phone("001565000002", Vendor::Linksys, "Desk");
    store.import_phones(&[with, without]).await.unwrap();

    let phones = store.phones().await.unwrap();
    let prov = |i: usize| phones[i].prov_password.as_ref().map(|p| p.expose_secret().to_owned());
    assert_eq!(prov(0).as_deref(), Some("Xk4-9qZ_r!~%^*()+=,;:?@{}/ünï"));
    assert_eq!(prov(1), None);
    assert_eq!(null_prov_passwords(&db).await, 1);

    // An update replaces it.
    let mut changed = phone("001565000001", Vendor::Yealink, "Lobby");
    changed.prov_password = Some("second-one".to_owned().into());
    store.import_phones(&[changed]).await.unwrap();
    let phones = store.phones().await.unwrap();
    assert_eq!(
        phones[0].prov_password.as_ref().map(|p| p.expose_secret().to_owned()).as_deref(),
        Some("second-one")
    );
}

/// Importing a known phone without a provisioning password (a seven-column CSV) clears
/// the stored one: the store holds what the latest import said.
async fn import_without_prov_password_stores_null(db: StoreDb) {
    use switchback_provisioning::Vendor;
    let store = open(&db).await;
    let mut first = phone("001565000001", Vendor::Yealink, "Lobby");
    first.prov_password = Some("first-one".to_owned().into());
    store.import_phones(&[first]).await.unwrap();
    assert_eq!(null_prov_passwords(&db).await, 0);

    let report = store.import_phones(&[phone("001565000001", Vendor::Yealink, "Lobby")]).await.unwrap();
    assert_eq!((report.added, report.updated), (0, 1));
    assert!(store.phones().await.unwrap()[0].prov_password.is_none());
    assert_eq!(null_prov_passwords(&db).await, 1, "stored as NULL, not as an empty text");

    // A hand-written empty text reads back as none too.
    db.exec("UPDATE phones SET prov_password = ''").await.unwrap();
    assert!(store.phones().await.unwrap()[0].prov_password.is_none());
}

async fn fetches_fold_into_each_phones_latest(db: StoreDb) {
    use switchback_provisioning::fetch::PhoneFetch;
    use switchback_provisioning::Vendor;
    let store = open(&db).await;
    let fetch = |mac: &str, secs: i64, generation: u64| PhoneFetch {
        mac: mac.parse().unwrap(),
        vendor: Vendor::Yealink,
        at: at(secs, 0),
        generation,
        source: "127.0.0.9".parse().unwrap(),
        user_agent: "Yealink SIP-T46S 66.86.0.15".to_owned(),
        count: 1,
    };
    // A record folded in memory (three fetches of one phone) counts as three.
    let folded = PhoneFetch { count: 3, ..fetch("001565000002", 65, 2) };
    store
        .record_fetches(&[
            fetch("001565000001", 1, 1),
            fetch("001565000001", 61, 2),
            fetch("001565000002", 5, 1),
        ])
        .await
        .unwrap();
    store.record_fetches(&[folded]).await.unwrap();
    let records = store.fetch_records().await.unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!((records[0].generation, records[0].at, records[0].fetches), (2, at(61, 0), 2));
    assert_eq!((records[1].generation, records[1].at, records[1].fetches), (2, at(65, 0), 4));
    assert_eq!(records[1].user_agent, "Yealink SIP-T46S 66.86.0.15");
}

/// A flush of a busy minute: more phones than one statement holds, all recorded, twice.
async fn a_large_fetch_batch_lands_whole(db: StoreDb) {
    use switchback_provisioning::fetch::PhoneFetch;
    use switchback_provisioning::{Mac, Vendor};
    let store = open(&db).await;
    let batch: Vec<PhoneFetch> = (0..1234u32)
        .map(|i| PhoneFetch {
            mac: Mac::new([0, 0x15, 0x65, 0, (i >> 8) as u8, i as u8]),
            vendor: if i % 2 == 0 { Vendor::Yealink } else { Vendor::Linksys },
            at: at(i64::from(i), 0),
            generation: 3,
            source: "10.0.0.7".parse().unwrap(),
            user_agent: format!("phone {i}"),
            count: 1,
        })
        .collect();
    store.record_fetches(&batch).await.unwrap();
    store.record_fetches(&batch).await.unwrap();
    let records = store.fetch_records().await.unwrap();
    assert_eq!(records.len(), 1234);
    assert!(records.iter().all(|r| r.fetches == 2 && r.generation == 3), "{:?}", records.first());
}

/// Ten phones: 0-4 fetched generation 2 at 100 s, 5-6 generation 1 at 10 s, 7-9 never;
/// and a fetch of a MAC that is not in the inventory.
async fn phone_page_filters_and_pages_in_mac_order(db: StoreDb) {
    use switchback_provisioning::fetch::PhoneFetch;
    use switchback_provisioning::Vendor;
    use switchback_store::{PhoneQuery, Seen};
    let store = open(&db).await;
    let mac = |i: usize| format!("0015650000{i:02x}");
    // Imported out of order: the page is in MAC order all the same.
    let phones: Vec<_> = (0..10)
        .rev()
        .map(|i| {
            let vendor = if i % 2 == 0 { Vendor::Yealink } else { Vendor::Linksys };
            let mut phone = phone(&mac(i), vendor, &format!("Desk {i}"));
            phone.password = format!("sip-secret-{i}").into();
            phone.prov_password = Some(format!("prov-secret-{i}").into());
            phone
        })
        .collect();
    store.import_phones(&phones).await.unwrap();
    let fetch = |mac: &str, secs: i64, generation: u64| PhoneFetch {
        mac: mac.parse().unwrap(),
        vendor: Vendor::Yealink,
        at: at(secs, 0),
        generation,
        source: "10.0.0.7".parse().unwrap(),
        user_agent: format!("agent of {mac}"),
        count: 1,
    };
    let mut fetches: Vec<_> = (0..5).map(|i| fetch(&mac(i), 100, 2)).collect();
    fetches.extend((5..7).map(|i| fetch(&mac(i), 10, 1)));
    fetches.push(fetch("0015659999ff", 100, 2));
    store.record_fetches(&fetches).await.unwrap();

    let query = |seen: Option<Seen>, generation: Option<u64>, offset: u64, limit: u32| {
        let store = store.clone();
        async move {
            let page = store
                .phone_page(&PhoneQuery { seen, generation, offset, limit, known_total: None })
                .await
                .unwrap();
            let listed = format!("{page:?}");
            assert!(!listed.contains("secret"), "a credential was listed: {listed}");
            let macs: Vec<String> = page.phones.iter().map(|p| p.mac.to_string()).collect();
            (page.total, macs, page)
        }
    };
    let macs = |range: std::ops::Range<usize>| range.map(mac).collect::<Vec<_>>();

    // A total the caller already knows (counted in memory) is taken for a full page.
    let known = PhoneQuery { seen: None, generation: None, offset: 0, limit: 3, known_total: Some(12_345) };
    assert_eq!(store.phone_page(&known).await.unwrap().total, 12_345);
    let short = PhoneQuery { limit: 100, ..known };
    assert_eq!(store.phone_page(&short).await.unwrap().total, 10, "a short page is its own total");

    let (total, listed, page) = query(None, None, 0, 100).await;
    assert_eq!((total, listed), (10, macs(0..10)));
    let first = &page.phones[0];
    assert_eq!(
        (first.vendor, first.model.as_str(), first.display_name.as_str(), first.user_id.as_str()),
        (Vendor::Yealink, "T46S", "Desk 0", "1001")
    );
    let last = first.fetch.as_ref().expect("phone 0 fetched");
    assert_eq!((last.at, last.generation), (at(100, 0), 2));
    assert_eq!(
        (last.source.to_string(), last.user_agent.clone()),
        ("10.0.0.7".to_owned(), format!("agent of {}", mac(0)))
    );
    assert_eq!(page.phones[5].fetch.as_ref().map(|f| f.generation), Some(1));
    assert!(page.phones[7..].iter().all(|p| p.fetch.is_none()), "{:?}", &page.phones[7..]);

    // Stale: never fetched, or last before the cutoff; a fetch at the cutoff is not stale.
    assert_eq!(query(Some(Seen::Before(at(50, 0))), None, 0, 100).await.1, macs(5..10));
    assert_eq!(query(Some(Seen::Since(at(50, 0))), None, 0, 100).await.1, macs(0..5));
    assert_eq!(query(Some(Seen::Before(at(100, 0))), None, 0, 100).await.1, macs(5..10));
    assert_eq!(query(Some(Seen::Since(at(100, 0))), None, 0, 100).await.1, macs(0..5));
    assert_eq!(query(Some(Seen::Before(at(101, 0))), None, 0, 100).await.0, 10);

    // Generation, alone and with the time filter.
    assert_eq!(query(None, Some(1), 0, 100).await.1, macs(5..7));
    assert_eq!(query(None, Some(2), 0, 100).await.1, macs(0..5));
    assert_eq!(query(Some(Seen::Before(at(50, 0))), Some(1), 0, 100).await.1, macs(5..7));
    assert_eq!(query(Some(Seen::Before(at(50, 0))), Some(2), 0, 100).await.0, 0);
    assert_eq!(query(None, Some(9), 0, 100).await.0, 0);
    assert_eq!(query(None, Some(u64::MAX), 0, 100).await.0, 0);

    // Pages: every total counts all matches, whichever way it is found (a full page
    // counts; a short one ends the list; an empty one past the end counts).
    let mut paged = Vec::new();
    for offset in (0..10).step_by(3) {
        let (total, listed, _) = query(None, None, offset, 3).await;
        assert_eq!(total, 10, "offset {offset}");
        paged.extend(listed);
    }
    assert_eq!(paged, macs(0..10));
    assert_eq!(query(Some(Seen::Before(at(50, 0))), None, 0, 5).await.0, 5);
    let (total, listed, _) = query(Some(Seen::Before(at(50, 0))), None, 2, 2).await;
    assert_eq!((total, listed), (5, macs(7..9)));
    assert_eq!(query(Some(Seen::Before(at(50, 0))), None, 5, 5).await.0, 5);
    assert_eq!(query(None, None, 12, 5).await.0, 10);
    assert_eq!(query(None, None, u64::MAX, 5).await.0, 10);
    assert_eq!(query(None, Some(1), 0, 0).await.0, 2);
}

/// A search path changed after the first start (a DBA made a schema named after the
/// role, say): the store is refused with the schema that holds it, and nothing is
/// created beside it, with or without `--init`.
#[tokio::test]
async fn postgres_tables_in_another_schema_are_named_not_replaced() {
    let db = require!(fresh_postgres().await, "postgresql");
    connect(db.url()).await.unwrap().close().await;
    db.exec_sql("CREATE SCHEMA elsewhere").await.unwrap();
    db.exec_sql(&format!("ALTER DATABASE {} SET search_path = elsewhere, public", db.name())).await.unwrap();
    for refused in [
        switchback_store::connect_existing(db.url()).await.unwrap_err(),
        connect(db.url()).await.unwrap_err(),
    ] {
        assert!(
            matches!(&refused, StoreError::OtherSchema { schema, .. } if schema == "public"),
            "{refused}"
        );
    }
    let created = db.exec_sql("SELECT * FROM elsewhere._sqlx_migrations").await;
    assert!(created.is_err(), "no second set of tables was made in the current schema");
}

/// Another application's migrations in another schema of the same database are not
/// switchback's: a first start still creates switchback's tables.
#[tokio::test]
async fn postgres_another_applications_migrations_are_not_taken_for_ours() {
    let db = require!(fresh_postgres().await, "postgresql");
    db.exec_sql("CREATE SCHEMA billing").await.unwrap();
    db.exec_sql("CREATE TABLE billing._sqlx_migrations (version BIGINT PRIMARY KEY)").await.unwrap();
    let store = connect(db.url()).await.unwrap();
    assert_eq!(store.load_state().await.unwrap(), None);
    store.close().await;
}

// ---- a group's lease, fencing and vantages (PostgreSQL only) ----------------------------

/// One lease, one holder: a second instance cannot take a running lease; it takes it
/// with a new term once it runs out; the first's renewal and writes are then refused,
/// and nothing of them is stored.
#[tokio::test]
async fn postgres_a_deposed_leader_can_write_nothing() {
    use switchback_store::{AlertDelivery, Claim, Enqueue};
    let db = require!(StoreDb::postgres().await, "postgresql");
    let store = open(&db).await;
    let lease = Duration::from_millis(600);
    let Claim::Won(first) = store.claim_lease("chi-1", lease).await.unwrap() else {
        panic!("nobody held it")
    };
    assert_eq!(first.term, 1);
    match store.claim_lease("va-1", lease).await.unwrap() {
        Claim::Held(held) => {
            assert_eq!((held.holder.as_deref(), held.term), (Some("chi-1"), 1));
            assert!(held.remaining > Duration::ZERO && held.remaining <= lease, "{held:?}");
        }
        won => panic!("a running lease was taken: {won:?}"),
    }
    assert!(store.renew_lease(&first, lease).await.unwrap());

    // While chi-1 leads, its fenced step lands, with its event and alert.
    let state = EngineState::new(at(0, 0));
    let alert = Enqueue { event_index: 0, webhook: "oncall".to_owned(), generation: 1 };
    store
        .save_step_with_alerts(Some(&first), &state, &[], &[event(1)], std::slice::from_ref(&alert))
        .await
        .unwrap();

    // chi-1 pauses past its lease; va-1 takes over with term 2.
    let taken = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Claim::Won(fence) = store.claim_lease("va-1", lease).await.unwrap() {
                return fence;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the lapsed lease was never taken over");
    assert_eq!((taken.node.as_str(), taken.term), ("va-1", 2));

    // chi-1 wakes: its renewal, its step and its delivery record are all refused.
    assert!(!store.renew_lease(&first, lease).await.unwrap());
    let mut moved = mid_failover();
    moved.generation = 7;
    let refused = store.save_step_with_alerts(Some(&first), &moved, &[], &[event(2)], &[alert]).await;
    assert!(matches!(refused, Err(StoreError::Fenced { term: 1, .. })), "{refused:?}");
    let pending = store.due_alerts(Utc::now() + chrono::Duration::hours(1), 10).await.unwrap();
    assert_eq!(pending.len(), 1, "only the alert of term 1's step is queued");
    let delivered = AlertDelivery::Delivered { status: 202 };
    let refused = store.record_delivery(Some(&first), pending[0].id, &delivered, Utc::now()).await;
    assert!(matches!(refused, Err(StoreError::Fenced { .. })), "{refused:?}");
    assert_eq!(store.load_state().await.unwrap().unwrap().generation, 1, "term 1's late step is not stored");
    assert_eq!(store.events(None, 10).await.unwrap().len(), 1);
    assert_eq!(store.alert_counts().await.unwrap().pending, 1, "the alert is still the new leader's to send");

    // The new leader records it; releasing the lease hands it on at once.
    store.record_delivery(Some(&taken), pending[0].id, &delivered, Utc::now()).await.unwrap();
    store.release_lease(&taken).await.unwrap();
    assert!(matches!(store.claim_lease("wit-1", lease).await.unwrap(), Claim::Won(f) if f.term == 3));
}

/// Each vantage's latest check per service, kept beside the history, fresh by when the
/// store recorded it (not by the instance's clock, which may be off).
#[tokio::test]
async fn postgres_vantages_keep_their_latest_checks() {
    let db = require!(StoreDb::postgres().await, "postgresql");
    let store = open(&db).await;
    let sip = ServiceId::new(Role::Primary, ServiceKind::Softswitch);
    store.record_round("chicago", "chi-1", &[check(sip, 10, true)]).await.unwrap();
    store.record_round("virginia", "va-1", &[check(sip, 11, false)]).await.unwrap();
    store.record_round("chicago", "chi-1", &[check(sip, 12, false)]).await.unwrap();
    let latest = store.vantage_checks(Duration::from_secs(60)).await.unwrap();
    let seen: Vec<(&str, bool, DateTime<Utc>)> =
        latest.iter().map(|v| (v.vantage.as_str(), v.check.healthy, v.check.checked_at)).collect();
    // The checks' own times are years old (`at`): fresh all the same, recorded just now.
    assert_eq!(seen, [("chicago", false, at(12, 0)), ("virginia", false, at(11, 0))]);
    assert!(store.vantage_checks(Duration::ZERO).await.unwrap().is_empty(), "stale checks are left out");
    assert_eq!(store.recent_checks(sip, 10).await.unwrap().len(), 3, "every round is in the history");
}

/// The group's tables refuse a SQLite store by name rather than misbehave.
#[tokio::test]
async fn a_group_needs_postgres() {
    let db = StoreDb::sqlite().unwrap();
    let store = open(&db).await;
    let refused = store.claim_lease("chi-1", Duration::from_secs(10)).await.unwrap_err();
    assert!(matches!(refused, StoreError::NeedsPostgres), "{refused}");
}

/// `remove_phones`: every named phone and its fetch record go in one transaction, or
/// none when any is unknown; the revision changes so a running switchback re-renders.
async fn phones_are_removed_all_or_none(db: StoreDb) {
    use switchback_provisioning::fetch::PhoneFetch;
    use switchback_provisioning::{Mac, Vendor};
    let store = open(&db).await;
    let mac = |i: usize| -> Mac { format!("0015650000{i:02x}").parse().unwrap() };
    let phones: Vec<_> =
        (0..5).map(|i| phone(&mac(i).to_string(), Vendor::Yealink, &format!("Desk {i}"))).collect();
    store.import_phones(&phones).await.unwrap();
    let fetches: Vec<_> = (0..5)
        .map(|i| PhoneFetch {
            mac: mac(i),
            vendor: Vendor::Yealink,
            at: at(10, 0),
            generation: 1,
            source: "10.0.0.7".parse().unwrap(),
            user_agent: "Yealink SIP-T46S 66.86.0.15".to_owned(),
            count: 1,
        })
        .collect();
    store.record_fetches(&fetches).await.unwrap();
    let before = store.phones_revision().await.unwrap();

    // One unknown MAC among known ones: nothing goes, and every unknown one is named.
    let unknown: Mac = "0015659999ff".parse().unwrap();
    let also_unknown: Mac = "0015659999fe".parse().unwrap();
    let err = store.remove_phones(&[mac(1), unknown, mac(2), also_unknown]).await.unwrap_err();
    match &err {
        StoreError::UnknownPhones { macs } => assert_eq!(macs, &[also_unknown, unknown]),
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("0015659999fe, 0015659999ff"), "{err}");
    assert_eq!(store.phones().await.unwrap().len(), 5, "a refused removal removed something");
    assert_eq!(store.fetch_records().await.unwrap().len(), 5);
    assert_eq!(store.phones_revision().await.unwrap(), before);

    // A MAC named twice counts once.
    assert_eq!(store.remove_phones(&[mac(1), mac(3), mac(1)]).await.unwrap(), 2);
    let left: Vec<String> = store.phones().await.unwrap().iter().map(|p| p.mac.to_string()).collect();
    assert_eq!(left, [mac(0), mac(2), mac(4)].map(|m| m.to_string()));
    let fetched: Vec<Mac> = store.fetch_records().await.unwrap().iter().map(|r| r.mac).collect();
    assert_eq!(fetched, [mac(0), mac(2), mac(4)], "their fetch records went with them");
    let after = store.phones_revision().await.unwrap();
    assert_ne!(after, before, "a removal changes the revision");
    assert_eq!(after.count, 3);

    assert_eq!(store.remove_phones(&[]).await.unwrap(), 0);
    // More MACs than one statement holds.
    let many: Vec<_> = (0..1200u32)
        .map(|i| phone(&Mac::new([2, 0, 0, 0, (i >> 8) as u8, i as u8]).to_string(), Vendor::Linksys, "Bulk"))
        .collect();
    store.import_phones(&many).await.unwrap();
    let macs: Vec<Mac> = many.iter().map(|p| p.mac).collect();
    assert_eq!(store.remove_phones(&macs).await.unwrap(), 1200);
    assert_eq!(store.phones_revision().await.unwrap().count, 3);
    store.close().await;
}

/// Each phone's first fetch of each generation is kept, per vendor and second, and a
/// generation starts with the step that made it.
async fn first_fetches_of_each_generation_make_its_convergence(db: StoreDb) {
    use switchback_provisioning::fetch::PhoneFetch;
    use switchback_provisioning::Vendor;
    let store = open(&db).await;
    let fetch = |mac: &str, vendor: Vendor, secs: i64, millis: u32, generation: u64| PhoneFetch {
        mac: mac.parse().unwrap(),
        vendor,
        at: at(secs, millis),
        generation,
        source: "10.0.0.7".parse().unwrap(),
        user_agent: "agent".to_owned(),
        count: 1,
    };
    let mut first = EngineState::new(at(0, 0));
    store.save_step(&first, &[], &[event(1)]).await.unwrap();
    // A step that moves phones: generation 2 starts at its earliest event.
    first.generation = 2;
    store.save_step(&first, &[], &[event(3), event(2)]).await.unwrap();
    store.save_step(&first, &[], &[event(7)]).await.unwrap();
    store
        .record_fetches(&[
            fetch("001565000001", Vendor::Yealink, 10, 100, 1),
            fetch("001565000002", Vendor::Yealink, 12, 0, 2),
            fetch("001565000003", Vendor::Linksys, 12, 900, 2),
        ])
        .await
        .unwrap();
    // Later fetches of a generation already fetched change nothing; a phone's first of
    // generation 2 counts in its own second.
    store
        .record_fetches(&[
            fetch("001565000002", Vendor::Yealink, 70, 0, 2),
            fetch("001565000001", Vendor::Yealink, 12, 500, 2),
            fetch("001565000004", Vendor::Yealink, 30, 0, 2),
        ])
        .await
        .unwrap();
    let convergence = store.generation_convergence(2).await.unwrap();
    assert_eq!(convergence.generation, 2);
    assert_eq!(convergence.started_at, Some(event(2).at));
    let steps: Vec<(Vendor, i64, u64)> =
        convergence.steps.iter().map(|s| (s.vendor, s.second - at(0, 0).timestamp(), s.phones)).collect();
    assert_eq!(steps, [(Vendor::Linksys, 12, 1), (Vendor::Yealink, 12, 2), (Vendor::Yealink, 30, 1)]);
    let one = store.generation_convergence(1).await.unwrap();
    assert_eq!(one.steps.len(), 1);
    assert_eq!(one.started_at, Some(event(1).at), "the first generation seen starts when first saved");
    let none = store.generation_convergence(9).await.unwrap();
    assert_eq!((none.started_at, none.steps.len()), (None, 0));
    let started = store.generations_since(event(2).at).await.unwrap();
    assert_eq!(started.iter().map(|g| g.generation).collect::<Vec<_>>(), [2]);

    // Pruning forgets generation 1's fetches once generation 2 started before the
    // cutoff, and keeps the current generation's however old.
    store.prune_checks(event(2).at).await.unwrap();
    assert_eq!(store.generation_convergence(1).await.unwrap().steps.len(), 1, "1 was current then");
    store.prune_checks(Utc::now()).await.unwrap();
    assert_eq!(store.generation_convergence(1).await.unwrap().steps.len(), 0);
    assert_eq!(store.generation_convergence(2).await.unwrap().steps.len(), 3);
    assert_eq!(store.generation_convergence(1).await.unwrap().started_at, Some(event(1).at));
}

async fn events_since_oldest_first(db: StoreDb) {
    let store = open(&db).await;
    let state = EngineState::new(at(0, 0));
    let batch: Vec<Event> = (0..10).map(event).collect();
    store.save_step(&state, &[], &batch).await.unwrap();
    let since = store.events_since(event(4).at, 3).await.unwrap();
    let got: Vec<Event> = since.into_iter().map(|e| e.event).collect();
    assert_eq!(got, (4..7).map(event).collect::<Vec<_>>());
}

/// `report`, `phones list` and `phones export` read a store as it is: one whose schema
/// lags this binary (upgraded before the service restarted) is refused, named, and left
/// as it was; an up-to-date one reads.
async fn a_store_opened_to_read_is_never_migrated(db: StoreDb) {
    let store = open(&db).await;
    store.save_step(&mid_failover(), &[], &[]).await.unwrap();
    store.close().await;
    let read = switchback_store::connect_to_read(&db.url()).await.unwrap();
    assert_eq!(read.load_state().await.unwrap(), Some(mid_failover()));
    read.close().await;

    // The latest migration's record gone: a store one version behind.
    let latest = "(SELECT MAX(version) FROM _sqlx_migrations)";
    db.exec(&format!("DELETE FROM _sqlx_migrations WHERE version = {latest}")).await.unwrap();
    let refused = switchback_store::connect_to_read(&db.url()).await.unwrap_err().to_string();
    assert!(refused.contains("older schema") && refused.contains("switchback run"), "{refused}");
    // Still behind: a second read is refused the same way (nothing migrated it).
    let again = switchback_store::connect_to_read(&db.url()).await.unwrap_err().to_string();
    assert_eq!(again, refused);
}
