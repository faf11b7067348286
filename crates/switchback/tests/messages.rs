//! What the real binary says when it refuses to start: one line on stderr that names the
//! culprit and what to do, said once, and exit code 2. And `check`'s one wording for a
//! name that does not resolve.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test reports failure

use std::ffi::OsStr;

use switchback_tests::peers::closed_port;
use switchback_tests::switchback::{check, one_shot, CheckRun, ConfigBuilder, SiteAddrs, TestConfig};

const BINARY: &str = env!("CARGO_BIN_EXE_switchback");

fn show(what: &str, run: &CheckRun) {
    eprintln!("---- {what}: exit {:?}\n{}---- stderr:\n{}", run.code, run.stdout, run.stderr);
}

/// `switchback run --config FILE`, plus `extra` arguments.
async fn run(config: &std::path::Path, extra: &[&str]) -> CheckRun {
    let mut args: Vec<&OsStr> = vec!["run".as_ref(), "--config".as_ref(), config.as_os_str()];
    args.extend(extra.iter().map(OsStr::new));
    one_shot(BINARY, &args).await.unwrap()
}

/// Exit 2 and stderr exactly `error: {expected}`, one line.
fn refused_with(what: &str, run: &CheckRun, expected: &str) {
    show(what, run);
    assert_eq!(run.code, Some(2), "{what}");
    assert_eq!(run.stderr.trim_end(), format!("error: {expected}"), "{what}");
    assert_eq!(run.stdout, "", "{what}: printed something besides the error");
}

fn a_config() -> ConfigBuilder {
    ConfigBuilder::new(SiteAddrs::offline().unwrap(), SiteAddrs::offline().unwrap())
}

#[tokio::test]
async fn a_missing_config_file_is_said_once() {
    let path = std::path::Path::new("/nonexistent-switchback-test/switchback.toml");
    let expected =
        format!("cannot read config file {}: No such file or directory (os error 2)", path.display());
    refused_with("run", &run(path, &[]).await, &expected);
    refused_with("check", &check(BINARY, path).await.unwrap(), &expected);
}

#[tokio::test]
async fn a_toml_syntax_error_names_the_file_line_and_column() {
    let good = a_config().write().unwrap().text();
    let text = good.replacen("[monitor]", "[monitor", 1);
    let line = text.lines().position(|l| l == "[monitor").unwrap() + 1;
    let config = TestConfig::raw(&text).unwrap();
    let expected = format!(
        "config file {}, line {line}, column 9: invalid table header; expected `.`, `]`",
        config.path().display()
    );
    refused_with("syntax error", &check(BINARY, config.path()).await.unwrap(), &expected);
}

#[tokio::test]
async fn a_bad_duration_names_its_key_and_line_and_says_what_a_duration_looks_like() {
    let good = a_config().write().unwrap().text();
    let from = good.lines().find(|l| l.starts_with("interval = ")).unwrap().to_owned();
    let text = good.replacen(&from, "interval = \"five minutes\"", 1);
    let line = text.lines().position(|l| l == "interval = \"five minutes\"").unwrap() + 1;
    let config = TestConfig::raw(&text).unwrap();
    let expected = format!(
        "config key `monitor.interval` (line {line}): invalid duration \"five minutes\": use a number and a \
         unit, such as \"30s\", \"5m\" or \"1h30m\""
    );
    refused_with("bad duration", &check(BINARY, config.path()).await.unwrap(), &expected);
}

#[tokio::test]
async fn a_store_in_a_folder_that_does_not_exist_names_the_folder_once() {
    let scratch = TestConfig::raw("").unwrap();
    let folder = scratch.dir().join("var-lib-switchback");
    let url = format!("sqlite://{}", folder.join("switchback.db").display());
    let config = a_config().write_with_store(&url).unwrap();
    let expected = format!(
        "the folder {folder} of the store {url} does not exist: create it, owned by the user switchback runs \
         as (`install -d -o switchback -g switchback -m 0750 {folder}`), or set `StateDirectory=switchback` in \
         its systemd unit",
        folder = folder.display()
    );
    for extra in [&[][..], &["--init"][..]] {
        let what = format!("run {extra:?}");
        refused_with(&what, &run(config.path(), extra).await, &expected);
        assert!(!folder.exists(), "{what}: the folder was made");
    }
}

#[tokio::test]
async fn check_says_a_name_that_does_not_resolve_one_way_for_every_probe() {
    let text = a_config().toml(closed_port().unwrap(), "sqlite://unused.db");
    // The primary site's three services at names under `.invalid` (RFC 6761): none resolves.
    let primary = text.split("[[sites]]").nth(1).unwrap();
    let named = r#"
name = "chicago"
role = "primary"
softswitch = { host = "sip1.chi.switchback-test.invalid", transport = "tcp" }
database = { url = "postgres://monitor:dbpass@db1.chi.switchback-test.invalid/voip" }
stun = { host = "stun1.chi.switchback-test.invalid" }
"#;
    let config = TestConfig::raw(&text.replacen(primary, named, 1)).unwrap();
    let run = check(BINARY, config.path()).await.unwrap();
    show("unresolvable primary", &run);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    for (service, host) in [
        ("softswitch", "sip1.chi.switchback-test.invalid"),
        ("database", "db1.chi.switchback-test.invalid"),
        ("stun", "stun1.chi.switchback-test.invalid"),
    ] {
        let row = run.row("primary", service).unwrap();
        assert!(!row.healthy, "{service}: {row:?}");
        // `timeout` only where no resolver answers at all.
        assert!(
            row.reason == format!("cannot resolve host {host}") || row.reason == "timeout",
            "{service}: `{}`",
            row.reason
        );
        assert!(!row.reason.contains("dbpass"), "{service}: {}", row.reason);
    }
}
