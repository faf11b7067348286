#![allow(clippy::unwrap_used)] // a panic is how a test reports failure

use super::*;

const GOOD: &str = r#"
[server]
listen = "127.0.0.1:8080"
public_url = "http://prov.example.net:8080"
admin_token = "s3cret-token-0123456789"

[store]
url = "sqlite://switchback.db"

[monitor]
interval = "5m"
timeout = "2s"
retries = 2
failover_after = "0s"
failback_after = "10m"

[phones]
poll_interval = "60s"

[[sites]]
name = "chicago"
role = "primary"
softswitch = { host = "sip1.chi.example.net", port = 5060, transport = "udp" }
database = { url = "postgres://monitor:dbpass@db1.chi.example.net/voip" }
stun = { host = "stun1.chi.example.net", port = 3478 }

[[sites]]
name = "virginia"
role = "backup"
softswitch = { host = "sip1.va.example.net", port = 5060, transport = "tcp" }
database = { url = "mysql://monitor@db1.va.example.net/voip" }
stun = { host = "stun1.va.example.net" }

[[alerts]]
name = "oncall"
url = "https://alerts.example.net/hooks/switchback"
format = "generic"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
"#;

fn error_of(text: &str) -> String {
    match Config::parse(text) {
        Ok(_) => panic!("config should have been refused:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_spec_example_loads_with_its_values_and_defaults() {
    let config = Config::parse(GOOD).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.monitor.interval, Duration::from_secs(300));
    assert_eq!(config.monitor.recheck_interval, Duration::from_secs(15));
    assert!(config.monitor.auto_failback);
    assert_eq!(config.site(Role::Primary).name, "chicago");
    assert_eq!(config.site(Role::Backup).softswitch.transport, Transport::Tcp);
    assert_eq!(config.site(Role::Backup).stun.port, 3478);
    assert_eq!(config.admin_token(), Some("s3cret-token-0123456789"));
    assert_eq!(config.alerts[0].format, AlertFormat::Generic);
}

#[test]
fn the_shipped_example_config_loads() {
    let text = include_str!("../../../../deploy/switchback.example.toml");
    let config = Config::parse(text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.monitor.interval, Duration::from_secs(300));
    assert_eq!(config.phones.poll_interval, Duration::from_secs(60));
    // The token comes from SWITCHBACK_ADMIN_TOKEN in the unit's EnvironmentFile, never
    // from a file operators copy around.
    assert!(!text.lines().any(|l| l.trim_start().starts_with("admin_token")), "an inline admin_token");
}

#[test]
fn secrets_never_show_in_debug_output() {
    let config = Config::parse(GOOD).unwrap_or_else(|e| panic!("{e}"));
    let debug = format!("{config:?}");
    for secret in ["s3cret-token", "dbpass", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"] {
        assert!(!debug.contains(secret), "{secret} leaked into Debug output");
    }
    assert!(!config.service_target(ServiceId::new(Role::Primary, ServiceKind::Database)).contains("dbpass"));
}

#[test]
fn bad_configs_name_the_key_and_the_problem() {
    let cases: &[(&str, &str, &[&str])] = &[
        ("unknown key", "[monitor]\nintervall = \"5m\"", &["monitor", "intervall"]),
        ("bad duration", "[monitor]\ninterval = \"five minutes\"", &["monitor.interval"]),
        ("wrong type", "[monitor]\nretries = \"two\"", &["monitor.retries"]),
        ("bad listen", "[server]\nlisten = \"nowhere\"", &["server.listen"]),
        ("bad public url", "[server]\npublic_url = \"not a url\"", &["server.public_url"]),
    ];
    for (name, patch, needles) in cases {
        // A patch replaces the matching table of the good config.
        let text = patch_config(patch);
        let err = error_of(&text);
        for needle in *needles {
            assert!(err.contains(needle), "{name}: `{err}` does not mention `{needle}`");
        }
    }
}

fn patch_config(patch: &str) -> String {
    let table = patch.lines().next().unwrap_or_default();
    let good = GOOD.replacen(table, "[unused_removed]", 1);
    // Drop the original table's body by renaming it to a throwaway the patch replaces.
    let without: String = strip_table(&good, "[unused_removed]");
    format!("{patch}\n{without}")
}

fn strip_table(text: &str, header: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in text.lines() {
        if line.starts_with('[') {
            skipping = line == header;
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[test]
fn site_mistakes_are_refused() {
    let two_primaries = GOOD.replace("role = \"backup\"", "role = \"primary\"");
    assert!(error_of(&two_primaries).contains("sites"));

    let one_site = GOOD.split("[[sites]]\nname = \"virginia\"").next().unwrap_or_default().to_owned();
    let err = error_of(&one_site);
    assert!(err.contains("sites") && err.contains("backup"), "{err}");

    let bad_role = GOOD.replace("role = \"backup\"", "role = \"standby\"");
    assert!(error_of(&bad_role).contains("sites[1].role"), "{}", error_of(&bad_role));

    let bad_port = GOOD.replace("port = 5060, transport = \"udp\"", "port = 70000, transport = \"udp\"");
    assert!(error_of(&bad_port).contains("sites[0].softswitch.port"), "{}", error_of(&bad_port));

    let zero_port = GOOD.replace("port = 5060, transport = \"udp\"", "port = 0, transport = \"udp\"");
    assert!(error_of(&zero_port).contains("sites[0].softswitch.port"));

    let bad_db = GOOD.replace("postgres://monitor:dbpass@db1.chi.example.net/voip", "redis://db1");
    let err = error_of(&bad_db);
    assert!(err.contains("sites[0].database.url") && err.contains("redis"), "{err}");
    assert!(!err.contains("dbpass"));

    let bad_transport = GOOD.replace("transport = \"tcp\"", "transport = \"carrier-pigeon\"");
    assert!(error_of(&bad_transport).contains("sites[1].softswitch.transport"));
}

#[test]
fn alert_mistakes_are_refused() {
    let bad_secret = GOOD.replace("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "hunter2");
    let err = error_of(&bad_secret);
    assert!(err.contains("alerts[0].secret") && !err.contains("hunter2"), "{err}");

    let not_base64 = GOOD.replace("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_not base64!");
    let err = error_of(&not_base64);
    assert!(
        err.contains("alerts[0].secret") && err.contains("base64") && !err.contains("not base64!"),
        "{err}"
    );

    let pagerduty = GOOD.replace("format = \"generic\"", "format = \"pagerduty\"");
    assert!(error_of(&pagerduty).contains("alerts[0].routing_key"));

    let bad_format = GOOD.replace("format = \"generic\"", "format = \"email\"");
    assert!(error_of(&bad_format).contains("alerts[0].format"));
}

#[test]
fn redact_url_hides_only_the_password() {
    assert_eq!(redact_url("postgres://u:pw@h/db"), "postgres://u:***@h/db");
    assert_eq!(redact_url("mysql://root@127.0.0.1:3306/test"), "mysql://root@127.0.0.1:3306/test");
}

#[test]
fn a_softswitch_port_defaults_by_transport() {
    let tls = GOOD.replace(
        r#"softswitch = { host = "sip1.va.example.net", port = 5060, transport = "tcp" }"#,
        r#"softswitch = { host = "sip1.va.example.net", transport = "tls" }"#,
    );
    let config = Config::parse(&tls).unwrap_or_else(|e| panic!("{e}"));
    let backup = &config.site(Role::Backup).softswitch;
    assert_eq!((backup.transport, backup.port()), (Transport::Tls, 5061));
    let udp = GOOD.replace(r#", port = 5060, transport = "udp" }"#, " }");
    let config = Config::parse(&udp).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.site(Role::Primary).softswitch.port(), 5060);
    let explicit = tls.replace(r#"transport = "tls" }"#, r#"transport = "tls", port = 5071 }"#);
    let config = Config::parse(&explicit).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.site(Role::Backup).softswitch.port(), 5071);
    let bad = GOOD.replace(r#"transport = "tcp""#, r#"transport = "sctp""#);
    assert!(error_of(&bad).contains("sites[1].softswitch.transport"), "{}", error_of(&bad));
}

#[test]
fn tokens_must_be_long_and_distinct() {
    let cases: &[(&str, &str)] = &[
        ("admin_token = \"s3cret-token-0123456789\"", "admin_token = \"\""),
        ("admin_token = \"s3cret-token-0123456789\"", "admin_token = \"change-me\""),
        ("admin_token = \"s3cret-token-0123456789\"", "admin_token = \"x\""),
        ("admin_token = \"s3cret-token-0123456789\"", "admin_token = \"has spaces in it, 16+\""),
    ];
    for (from, to) in cases {
        let err = error_of(&GOOD.replace(from, to));
        assert!(err.contains("server.admin_token"), "{to}: {err}");
        assert!(!err.contains("change-me"), "the token is echoed: {err}");
    }
    let same = GOOD.replace(
        "admin_token = \"s3cret-token-0123456789\"",
        "admin_token = \"s3cret-token-0123456789\"\nread_token = \"s3cret-token-0123456789\"",
    );
    assert!(error_of(&same).contains("server.read_token"));
    let short_read = GOOD.replace(
        "admin_token = \"s3cret-token-0123456789\"",
        "admin_token = \"s3cret-token-0123456789\"\nread_token = \"grafana\"",
    );
    assert!(error_of(&short_read).contains("server.read_token"));
}

#[test]
fn tls_and_provisioning_mistakes_name_the_key() {
    let with_server = |extra: &str| {
        GOOD.replace(
            "admin_token = \"s3cret-token-0123456789\"",
            &format!("admin_token = \"s3cret-token-0123456789\"\n{extra}"),
        )
    };
    let tls = "tls_listen = \"127.0.0.1:8443\"\ntls_cert = \"/c.pem\"\ntls_key = \"/k.pem\"";
    let cases: &[(String, &str)] = &[
        (with_server("tls_listen = \"127.0.0.1:8443\""), "server.tls_cert"),
        (with_server("tls_listen = \"127.0.0.1:8443\"\ntls_cert = \"/c.pem\""), "server.tls_key"),
        (with_server("tls_cert = \"/c.pem\"\ntls_key = \"/k.pem\""), "server.tls_listen"),
        (with_server("max_connections = 0"), "server.max_connections"),
        (
            format!("{GOOD}\n[provisioning]\nauth = \"client_cert\"\nclient_ca = \"/ca.pem\""),
            "provisioning.auth",
        ),
        (format!("{}\n[provisioning]\nauth = \"client_cert\"", with_server(tls)), "provisioning.client_ca"),
        (format!("{GOOD}\n[provisioning]\nauth = \"kerberos\""), "provisioning.auth"),
        (format!("{GOOD}\n[provisioning]\nallow = [\"10.0.0.0/33\"]"), "provisioning.allow"),
        (format!("{GOOD}\n[provisioning]\nallow = [\"ten-net\"]"), "provisioning.allow"),
        (format!("{GOOD}\n[provisioning]\nhttps_only = true"), "provisioning.https_only"),
        (format!("{GOOD}\n[provisioning]\nscan_limit = 0"), "provisioning.scan_limit"),
        (format!("{GOOD}\n[provisioning]\nauth = \"digest\"\nscan_limit = 1"), "provisioning.scan_limit"),
        (format!("{GOOD}\n[provisioning]\nallow = []"), "provisioning.allow"),
        (format!("{GOOD}\n[provisioning]\nallow = [\"10.1.2.3/8\"]"), "provisioning.allow[0]"),
        (format!("{GOOD}\n[provisioning]\nblock_for = \"forever\""), "provisioning.block_for"),
    ];
    for (text, key) in cases {
        let err = error_of(text);
        assert!(err.contains(key), "expected `{key}` in `{err}`");
    }
    let good = format!(
        "{}\n[provisioning]\nauth = \"client_cert\"\nclient_ca = \"/ca.pem\"\nallow = [\"10.0.0.0/8\", \"2001:db8::/32\"]\nhttps_only = true\nscan_limit = 5\nblock_for = \"15m\"",
        with_server(tls)
    );
    let config = Config::parse(&good).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.provisioning.auth, ProvisioningAuth::ClientCert);
    assert!(config.provisioning.allows("10.1.2.3".parse().unwrap_or_else(|e| panic!("{e}"))));
    assert!(!config.provisioning.allows("192.168.1.1".parse().unwrap_or_else(|e| panic!("{e}"))));
    assert_eq!(config.provisioning.block_for, Duration::from_secs(900));
    let defaults = Config::parse(GOOD).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(defaults.provisioning.auth, ProvisioningAuth::None);
    assert_eq!((defaults.provisioning.scan_limit, defaults.server.max_connections), (20, 10_000));
}

#[test]
fn small_defects_are_refused_by_name() {
    let twice = format!(
        "{GOOD}\n[[alerts]]\nname = \"oncall\"\nurl = \"https://other.example.net/hook\"\nformat = \"slack\"\n"
    );
    assert!(error_of(&twice).contains("alerts[1].name"), "{}", error_of(&twice));
    for url in ["http://prov.example.net:8080/?x=1", "http://prov.example.net:8080/#top"] {
        let text = GOOD.replace("http://prov.example.net:8080", url);
        assert!(error_of(&text).contains("server.public_url"), "{url}");
    }
    let huge = GOOD.replace("timeout = \"2s\"", "timeout = \"100years\"");
    assert!(error_of(&huge).contains("monitor.timeout"), "{}", error_of(&huge));
    let quote = GOOD.replace("name = \"chicago\"", "name = \"chi\\\"cago\"");
    assert!(error_of(&quote).contains("sites[0].name"), "{}", error_of(&quote));
}

#[test]
fn redact_url_hides_query_passwords_too() {
    let redacted = redact_url("postgres://u@h/db?sslmode=require&password=hunter2&PWD=x");
    assert!(!redacted.contains("hunter2") && !redacted.contains("PWD=x"), "{redacted}");
    assert!(redacted.contains("sslmode=require"), "{redacted}");
}

/// GOOD on PostgreSQL, with `[cluster]` keys.
fn clustered(keys: &str) -> Result<Config, ConfigError> {
    let text = GOOD.replace("sqlite://switchback.db", "postgres://switchback@db.example.net/switchback");
    Config::parse(&format!("{text}\n[cluster]\n{keys}\n"))
}

#[test]
fn a_cluster_needs_postgres_and_says_why() {
    let err = Config::parse(&format!("{GOOD}\n[cluster]\nnode = \"va-1\"\n")).unwrap_err().to_string();
    assert!(err.contains("config key `cluster`") && err.contains("postgres://"), "{err}");
    assert!(err.contains("SQLite"), "{err}");
    assert!(Config::parse(GOOD).unwrap().cluster.is_none());
}

#[test]
fn a_cluster_fills_its_defaults_and_checks_its_keys() {
    let cluster = clustered("node = \"va-1\"").unwrap().cluster.unwrap();
    assert_eq!((cluster.node.as_str(), cluster.vantage.as_str()), ("va-1", "va-1"));
    assert_eq!((cluster.lease, cluster.quorum), (DEFAULT_LEASE, DEFAULT_QUORUM));
    let named = clustered("").unwrap().cluster.unwrap();
    assert!(!named.node.is_empty(), "the host name is the default node");
    let full = clustered("node = \"chi-1\"\nvantage = \"chicago\"\nlease = \"4s\"\nquorum = 3").unwrap();
    let full = full.cluster.unwrap();
    assert_eq!((full.vantage.as_str(), full.lease, full.quorum), ("chicago", Duration::from_secs(4), 3));
    for (keys, culprit) in [
        ("node = \"va 1\"", "cluster.node"),
        ("vantage = \"<script>\"", "cluster.vantage"),
        ("lease = \"1s\"", "cluster.lease"),
        ("quorum = 0", "cluster.quorum"),
        ("leader = \"x\"", "cluster"),
    ] {
        let err = clustered(keys).unwrap_err().to_string();
        assert!(err.contains(&format!("`{culprit}")), "{keys}: {err}");
    }
}

#[test]
fn a_syntax_error_names_the_line_and_the_column() {
    let text = format!("{GOOD}\n[monitor\nretries = 1\n");
    let line = text.lines().position(|l| l == "[monitor").unwrap() + 1;
    let err = error_of(&text);
    assert!(err.starts_with(&format!("config line {line}, column 9: invalid table header")), "{err}");
    assert!(!err.contains('\n'), "one line: {err}");
    // Read from a file, it names the file too.
    let path = std::env::temp_dir().join(format!("switchback-syntax-{}.toml", std::process::id()));
    std::fs::write(&path, &text).unwrap();
    let err = Config::load(&path).unwrap_err().to_string();
    std::fs::remove_file(&path).unwrap();
    assert!(
        err.starts_with(&format!(
            "config file {}, line {line}, column 9: invalid table header",
            path.display()
        )),
        "{err}"
    );
    let twice = error_of("a = 1\na = 2\n");
    assert!(twice.starts_with("config line 2, column 1: duplicate key `a`"), "{twice}");
}

#[test]
fn a_wrong_value_names_its_key_and_line_and_a_rule_only_its_key() {
    let text = GOOD.replace("retries = 2", "retries = \"two\"");
    let line = text.lines().position(|l| l.starts_with("retries")).unwrap() + 1;
    assert_eq!(
        error_of(&text),
        format!("config key `monitor.retries` (line {line}): invalid type: string \"two\", expected u32")
    );
    let role = GOOD.replace("role = \"backup\"", "role = \"standby\"");
    assert!(error_of(&role).starts_with("config key `sites[1].role` (line "), "{}", error_of(&role));
    // A rule checked after parsing knows no line: the key alone, as before.
    let retries = GOOD.replace("retries = 2", "retries = 11");
    assert_eq!(error_of(&retries), "config key `monitor.retries`: at most 10 extra attempts");
}

#[test]
fn a_bad_duration_says_what_a_duration_looks_like() {
    let hint = "use a number and a unit, such as \"30s\", \"5m\" or \"1h30m\"";
    for (value, said) in
        [("\"five minutes\"", "invalid duration \"five minutes\""), ("\"5\"", "invalid duration \"5\"")]
    {
        let err = error_of(&GOOD.replace("interval = \"5m\"", &format!("interval = {value}")));
        assert!(err.starts_with("config key `monitor.interval` (line "), "{err}");
        assert!(err.ends_with(&format!("{said}: {hint}")), "{err}");
    }
    let bare = error_of(&GOOD.replace("interval = \"5m\"", "interval = 300"));
    assert!(bare.ends_with("invalid duration 300: a quoted number with a unit, such as \"300s\""), "{bare}");
    for (table, key) in [
        ("[provisioning]\nblock_for = \"forever\"", "provisioning.block_for"),
        ("[store]\ncheck_retention = \"a week\"", "store.check_retention"),
    ] {
        let err = error_of(&patch_config(table));
        assert!(err.contains(&format!("`{key}`")) && err.ends_with(hint), "{err}");
    }
    let lease = clustered("lease = \"soon\"").unwrap_err().to_string();
    assert!(lease.contains("`cluster.lease`") && lease.ends_with(hint), "{lease}");
    // humantime's spellings still load.
    let spelled = GOOD.replace("interval = \"5m\"", "interval = \"1h 30m\"");
    assert_eq!(Config::parse(&spelled).unwrap().monitor.interval, Duration::from_secs(5400));
}

#[test]
fn a_missing_file_is_named_once() {
    let err = Config::load(Path::new("/nonexistent-switchback/x.toml")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot read config file /nonexistent-switchback/x.toml: No such file or directory (os error 2)"
    );
}

#[test]
fn a_secret_is_never_repeated_by_its_error() {
    let token = GOOD.replace("admin_token = \"s3cret-token-0123456789\"", "admin_token = 987654321098");
    let err = Config::parse(&token).unwrap_err().to_string();
    assert!(err.contains("server.admin_token") && !err.contains("987654321098"), "{err}");
    let hook = "[[alerts]]\nname = \"ops\"\nurl = \"hooks.slack.com/services/T0/B0/XXSECRETXX\"\nformat = \"slack\"\n";
    let err = Config::parse(&format!("{GOOD}\n{hook}")).unwrap_err().to_string();
    assert!(err.contains("alerts[") && !err.contains("XXSECRETXX"), "{err}");
    let ftp = hook.replace("hooks.slack.com", "ftp://hooks.slack.com");
    let err = Config::parse(&format!("{GOOD}\n{ftp}")).unwrap_err().to_string();
    assert!(err.contains("ftp:") && !err.contains("XXSECRETXX"), "{err}");
}
