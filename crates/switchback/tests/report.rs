//! `switchback report` on a store written directly (through `switchback_store`): a
//! failover of `sip` an hour ago, phones converging on its generation, a failback; and
//! a report refuses a store that does not exist rather than creating one.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test reports failure

use chrono::{DateTime, Duration, Utc};
use switchback_core::{EngineState, Event, EventKind, Role, Route, RouteState, ServiceId, ServiceKind};
use switchback_provisioning::fetch::PhoneFetch;
use switchback_provisioning::{Mac, Phone, Vendor};
use switchback_tests::switchback::{one_shot, ConfigBuilder, SiteAddrs};

const BINARY: &str = env!("CARGO_BIN_EXE_switchback");

fn transition(at: DateTime<Utc>, from: RouteState, to: RouteState, active: Role, actor: &str) -> Event {
    let mut e = Event::note(at, EventKind::Transition, actor, format!("{} → {}", from.as_str(), to.as_str()));
    e.route = Some(Route::Sip);
    (e.from, e.to, e.active) = (Some(from), Some(to), Some(active));
    e
}

fn phone(n: u8) -> Phone {
    Phone {
        mac: Mac::new([0x00, 0x15, 0x65, 0, 0, n]),
        vendor: if n % 2 == 0 { Vendor::Yealink } else { Vendor::Linksys },
        model: "T46S".to_owned(),
        display_name: format!("Desk {n}"),
        user_id: format!("{}", 1000 + u32::from(n)),
        auth_id: String::new(),
        password: format!("pw-{n}").into(),
        prov_password: None,
    }
}

async fn report(config: &std::path::Path, since: &str) -> switchback_tests::switchback::CheckRun {
    let args =
        ["report".as_ref(), "--config".as_ref(), config.as_os_str(), "--since".as_ref(), since.as_ref()];
    one_shot(BINARY, &args).await.unwrap()
}

#[tokio::test]
async fn a_failover_reads_as_detection_failover_convergence_and_failback() {
    let site = || SiteAddrs::offline().unwrap();
    let config = ConfigBuilder::new(site(), site()).write().unwrap();
    let url = format!("sqlite://{}", config.store_path().display());
    let store = switchback_store::connect(&url).await.unwrap();

    // Whole seconds: an hour ago the primary softswitch stopped answering.
    let t0 = DateTime::from_timestamp(Utc::now().timestamp() - 3600, 0).unwrap();
    let at = |secs: i64| t0 + Duration::seconds(secs);
    let phones: Vec<Phone> = (0..20).map(phone).collect();
    store.import_phones(&phones).await.unwrap();
    let mut state = EngineState::new(at(-600));
    store.save_step(&state, &[], &[]).await.unwrap();
    let mut down = Event::note(at(0), EventKind::ServiceDown, "monitor", "timeout after 300ms");
    down.service = Some(ServiceId::new(Role::Primary, ServiceKind::Softswitch));
    let failing = transition(at(0), RouteState::Primary, RouteState::Failing, Role::Primary, "monitor");
    store.save_step(&state, &[], &[down, failing]).await.unwrap();
    state.generation = 2;
    let over = transition(at(30), RouteState::Failing, RouteState::FailedOver, Role::Backup, "monitor");
    store.save_step(&state, &[], &[over]).await.unwrap();
    // 10 phones within 18 s, 9 more by 170 s, the last never.
    let fetch = |n: u8, secs: i64| PhoneFetch {
        mac: phone(n).mac,
        vendor: phone(n).vendor,
        at: at(30 + secs),
        generation: 2,
        source: "192.0.2.10".parse().unwrap(),
        user_agent: "phone".to_owned(),
        count: 1,
    };
    let first: Vec<_> = (0..10).map(|n| fetch(n, 2 * i64::from(n))).collect();
    store.record_fetches(&first).await.unwrap();
    let second: Vec<_> = (10..19).map(|n| fetch(n, 10 * i64::from(n) - 10)).collect();
    store.record_fetches(&second).await.unwrap();
    state.generation = 3;
    let recovering =
        transition(at(600), RouteState::FailedOver, RouteState::Recovering, Role::Backup, "monitor");
    let back = transition(at(720), RouteState::Recovering, RouteState::Primary, Role::Primary, "monitor");
    store.save_step(&state, &[], &[recovering]).await.unwrap();
    store.save_step(&state, &[], &[back]).await.unwrap();
    store.close().await;

    let run = report(config.path(), "24h").await;
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    let text = run.stdout;
    let line = |start: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(start))
            .unwrap_or_else(|| panic!("no line {start:?} in:\n{text}"))
            .to_owned()
    };
    assert!(text.contains("phones in the inventory: 20"), "{text}");
    assert!(line("Failover 1:").contains("sip to virginia (generation 2)"), "{text}");
    assert!(line("first failed check").contains("chicago softswitch: timeout after 300ms"), "{text}");
    assert!(line("route failing").contains("detected 0s after the first failed check"), "{text}");
    assert!(line("failed over").contains("by monitor, 30s after failing"), "{text}");
    let converged = line("phones converged");
    assert!(converged.contains("50 % after 18s"), "{text}");
    assert!(converged.contains("95 % after 2m 50s"), "{text}");
    assert!(converged.contains("100 % not reached (19 of 20 phones fetched generation 2)"), "{text}");
    assert!(line("failed back").contains("11m 30s after failing over"), "{text}");
    assert!(text.contains("Events, oldest first (5):"), "{text}");
    assert!(text.contains("route failed over"), "{text}");
    assert!(!text.contains("Failover 2"), "one failover: {text}");

    // A window after it all: no failover.
    let quiet = report(config.path(), "30m").await;
    assert_eq!(quiet.code, Some(0), "{}", quiet.stderr);
    assert!(quiet.stdout.contains("No failover in this window."), "{}", quiet.stdout);
    // A window beyond 7 days is refused.
    let wide = report(config.path(), "8d").await;
    assert_eq!(wide.code, Some(2), "{}", wide.stdout);
    assert!(wide.stderr.contains("at most 7d"), "{}", wide.stderr);
}

#[tokio::test]
async fn a_report_never_creates_a_store() {
    let site = || SiteAddrs::offline().unwrap();
    let config = ConfigBuilder::new(site(), site()).write().unwrap();
    let run = report(config.path(), "24h").await;
    assert_eq!(run.code, Some(2), "{}", run.stdout);
    assert!(run.stderr.contains("does not exist"), "{}", run.stderr);
    assert!(!config.store_path().exists(), "nothing was created");
}
