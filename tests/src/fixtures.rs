//! Config text for in-process tests, where no site is ever reached: two sites with
//! example names, to follow a test's own `[server]`, `[monitor]` or `[phones]` tables.

/// The `[[sites]]` of a primary in Chicago and a backup in Virginia.
pub const TWO_SITES: &str = r#"
[[sites]]
name = "chicago"
role = "primary"
softswitch = { host = "sip1.chi.example.net", port = 5060, transport = "udp" }
database = { url = "postgres://monitor@db1.chi.example.net/voip" }
stun = { host = "stun1.chi.example.net", port = 3478 }

[[sites]]
name = "virginia"
role = "backup"
softswitch = { host = "sip1.va.example.net", port = 5080, transport = "tcp" }
database = { url = "mysql://monitor@db1.va.example.net/voip" }
stun = { host = "stun1.va.example.net", port = 3479 }
"#;
