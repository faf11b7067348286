//! The store failing under a running switchback, on real peers: SQLite on a filesystem
//! that fills up, and PostgreSQL behind a proxy that is cut. In each, the primary
//! softswitch dies during the fault: nothing is decided while the store refuses writes
//! (`/healthz` says so, `/readyz` stays 200, the metric is 0, the services view still
//! shows what the probes see), and once the store is back the route fails over within
//! a recheck or two, by itself.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test reports failure

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use switchback_tests::databases::fresh_postgres;
use switchback_tests::lab::{Lab, Running, TestPhone};
use switchback_tests::proxy::Proxy;
use switchback_tests::switchback::ConfigBuilder;
use switchback_tests::wait::until;
use tokio::time::Instant;

const BINARY: &str = env!("CARGO_BIN_EXE_switchback");
const TOKEN: &str = "store-fault-test-token";
/// The harness's recheck interval is 500 ms; a round may also wait out a probe timeout.
const DECIDED_WITHIN: Duration = Duration::from_secs(5);

fn builder(lab: &Lab) -> ConfigBuilder {
    lab.config().failback_after(Duration::from_secs(600))
}

fn phones() -> Vec<TestPhone> {
    vec![TestPhone::new("0015651234a1", "yealink", 1)]
}

/// Waits until the store is reported down everywhere an operator looks, while the
/// primary softswitch is down and nothing has moved.
/// `nothing_moves`: assert that the route has not moved. A full disk is not an exact
/// fault (SQLite reuses space a rollback or checkpoint frees, so a write can slip
/// through, and then the failover rightly happens early); a cut network is.
async fn see_the_fault(running: &Running, nothing_moves: bool) {
    until("/healthz to say the store refuses writes", Duration::from_secs(15), || async {
        let health = running.get("/healthz").await.ok()?;
        (health.status == 503 && health.text().contains("store refuses writes")).then_some(())
    })
    .await
    .unwrap();
    until("the probes' view of the dead softswitch", Duration::from_secs(10), || async {
        let status = running.status().await.ok()?;
        (status.service("primary", "softswitch")?["healthy"] == false).then_some(())
    })
    .await
    .unwrap();
    let status = running.status().await.unwrap();
    assert_eq!(status.0["store"]["up"], false, "{}", status.0);
    assert!(status.0["store"]["error"].as_str().is_some_and(|e| !e.is_empty()), "{}", status.0);
    if nothing_moves {
        assert_eq!(status.route("sip", "state"), "primary", "nothing is decided while the store is down");
    }
    assert_eq!(running.get("/readyz").await.unwrap().status, 200, "phone files are still served");
    assert_eq!(running.get(&running.phones[0].path()).await.unwrap().status, 200);
    let metrics = running.get("/metrics").await.unwrap().text();
    assert!(metrics.contains("switchback_store_up 0"), "{metrics}");
    assert!(running.process.log().contains("store refuses writes"), "the log says why");
}

/// After the fault ends: failed over within [`DECIDED_WITHIN`], store up again.
async fn see_the_recovery(running: &Running, fault_ended: Instant) {
    until("the sip route to fail over after the fault", DECIDED_WITHIN, || async {
        let status = running.status().await.ok()?;
        (status.route("sip", "state") == "failed_over").then_some(())
    })
    .await
    .unwrap();
    eprintln!("failed over {:?} after the store came back", fault_ended.elapsed());
    until("/healthz 200 again", Duration::from_secs(10), || async {
        (running.get("/healthz").await.ok()?.status == 200).then_some(())
    })
    .await
    .unwrap();
    let metrics = running.get("/metrics").await.unwrap().text();
    assert!(metrics.contains("switchback_store_up 1"), "{metrics}");
}

/// A small tmpfs, unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(megabytes: u32) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount runs");
        assert!(status.success(), "mounting a tmpfs needs root (CI runs as root)");
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills every free byte; answers the filler file.
    fn fill(&self) -> PathBuf {
        let filler = self.path().join("filler");
        let _ = Command::new("dd")
            .args(["if=/dev/zero", "bs=64k"])
            .arg(format!("of={}", filler.display()))
            .stderr(std::process::Stdio::null())
            .status();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

#[tokio::test]
async fn a_full_disk_under_sqlite_delays_the_failover_only_until_space_is_back() {
    let mut lab = Lab::start().await.unwrap();
    let disk = SmallDisk::mount(16);
    let builder = builder(&lab);
    let store = format!("sqlite://{}", disk.path().join("switchback.db").display());
    let config = builder.write_with_store(&store).unwrap();
    let running = Running::start_with(BINARY, &builder, config, &phones()).await.unwrap();
    running.wait_rounds(1).await.unwrap();

    let filler = disk.fill();
    lab.primary.stop_softswitch();
    see_the_fault(&running, false).await;
    // A while with the disk full: many rounds refused, none may wedge the next.
    running.wait_rounds(4).await.unwrap();

    std::fs::remove_file(&filler).unwrap();
    see_the_recovery(&running, Instant::now()).await;
}

#[tokio::test]
async fn a_cut_postgres_store_delays_the_failover_only_until_it_is_back() {
    let mut lab = Lab::start().await.unwrap();
    let database = fresh_postgres().await.unwrap();
    let proxy = Proxy::in_front_of(database.url()).await.unwrap();
    let builder = builder(&lab);
    let config = builder.write_with_store(&proxy.url(database.url()).unwrap()).unwrap();
    let running = Running::start_with(BINARY, &builder, config, &phones()).await.unwrap();
    running.wait_rounds(1).await.unwrap();

    proxy.cut().await.unwrap();
    lab.primary.stop_softswitch();
    see_the_fault(&running, true).await;
    if let Err(err) = running.wait_rounds(4).await {
        let log = running.process.log();
        panic!("{err}\n{}", &log[log.len().saturating_sub(6000)..]);
    }
    assert_eq!(running.status().await.unwrap().route("sip", "state"), "primary");

    proxy.restore().await.unwrap();
    see_the_recovery(&running, Instant::now()).await;
}

/// Deleting the SQLite file under a running switchback is noticed: writes stop (nothing
/// is persisted into a file nobody will read), and `/healthz` says why. A restart does
/// not replace it with an empty store (every phone would get 404): it refuses to start
/// and says how to recover, until the store is restored.
#[tokio::test]
async fn a_deleted_store_file_is_noticed() {
    let lab = Lab::start().await.unwrap();
    let builder = builder(&lab).admin_token(TOKEN);
    let mut running = Running::start(BINARY, &builder, &phones()).await.unwrap();
    running.wait_rounds(1).await.unwrap();
    std::fs::remove_file(running.config.store_path()).unwrap();
    until("/healthz to say the store file is gone", Duration::from_secs(15), || async {
        let health = running.get("/healthz").await.ok()?;
        (health.status == 503 && health.text().contains("deleted or replaced")).then_some(())
    })
    .await
    .unwrap();
    let refused = running.act("sip", "pause", Some(TOKEN), None).await.unwrap();
    assert_eq!(refused.status, 503, "an operator action into a deleted file: {}", refused.text());
    assert_eq!(running.status().await.unwrap().route("sip", "mode"), "auto");

    let store = running.config.store_path();
    running.process.restart().await.unwrap();
    let exited = until("the restart on a missing store to exit", Duration::from_secs(15), || {
        let status = running.process.exited();
        async move { status }
    })
    .await
    .unwrap();
    assert_eq!(exited.code(), Some(2), "{}", running.process.log());
    let log = running.process.log();
    assert!(log.contains("does not exist or is empty") && log.contains("--init"), "{log}");
    assert!(!store.exists(), "no empty store was created in its place");
}
