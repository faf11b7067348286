use super::*;

const GOOD: &str = r#"
[server]
listen = "127.0.0.1:8080"
public_url = "http://prov.example.net:8080"
admin_token = "s3cret-token"

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
    assert_eq!(config.admin_token(), Some("s3cret-token"));
    assert_eq!(config.alerts[0].format, AlertFormat::Generic);
}

#[test]
fn the_shipped_example_config_loads() {
    let text = include_str!("../../../../deploy/switchback.example.toml");
    let config = Config::parse(text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.monitor.interval, Duration::from_secs(300));
    assert_eq!(config.phones.poll_interval, Duration::from_secs(60));
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
