//! The dashboard in a real headless Chromium: runs `tests/browser/dashboard.spec.mjs`
//! (playwright-core, installed by `.ci/install-browser`) against the real binary's
//! `switchback demo`. It logs in, breaks the primary softswitch, watches sip fail over
//! and the phones converge, forces a failback, checks the layout at 1024, 1280, 1440,
//! 1600 and 1920 px and on a phone (no sideways scrolling, no control overlapping another
//! or cut off), and logs out, saving screenshots to `tests/artifacts/`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test reports failure

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const BINARY: &str = env!("CARGO_BIN_EXE_switchback");
const CHROMIUM: &str = "/usr/bin/chromium";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the workspace root")
}

/// What the browser test needs and is missing, if anything.
fn missing(root: &Path) -> Vec<String> {
    let mut missing = Vec::new();
    if !Path::new(CHROMIUM).exists() {
        missing.push(format!("{CHROMIUM} (apt-get install chromium)"));
    }
    if !root.join("tests/browser/node_modules/playwright-core/package.json").exists() {
        missing.push("tests/browser/node_modules/playwright-core (npm install in tests/browser)".to_owned());
    }
    if Command::new("node").arg("--version").output().is_err() {
        missing.push("node".to_owned());
    }
    missing
}

#[test]
fn dashboard_drives_a_failover_and_a_failback_in_chromium() {
    let root = workspace_root();
    let missing = missing(&root);
    if !missing.is_empty() {
        let what = format!("the browser test needs {}; run .ci/install-browser", missing.join(", "));
        if switchback_tests::in_ci() {
            panic!("{what}");
        }
        eprintln!("SKIPPED: {what}");
        return;
    }
    let started = Instant::now();
    // Captured and printed through libtest, so a passing run stays quiet.
    let output = Command::new("node")
        .arg("tests/browser/dashboard.spec.mjs")
        .current_dir(&root)
        .env("SWITCHBACK_BIN", BINARY)
        .output()
        .expect("node runs");
    print!("{}", String::from_utf8_lossy(&output.stdout));
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        output.status.success(),
        "the dashboard browser test failed ({}) after {:.1} s; its output above says why, \
         tests/artifacts/ has the screenshots",
        output.status,
        started.elapsed().as_secs_f64()
    );
}
