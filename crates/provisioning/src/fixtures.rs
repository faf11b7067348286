//! Test data: a config with two sites, and phones.

use secrecy::SecretString;
use switchback_core::{Config, Role, Route};

use crate::{ActiveSites, Mac, Phone, RenderSettings, Vendor};

pub(crate) const CONFIG: &str = r#"
[server]
public_url = "http://prov.example.net:8080"

[phones]
poll_interval = "120s"

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

pub(crate) fn config() -> Config {
    Config::parse(CONFIG).unwrap_or_else(|e| panic!("fixture config: {e}"))
}

/// The sites with `sip` on `sip_role` and `stun` on `stun_role`.
pub(crate) fn sites(sip_role: Role, stun_role: Role) -> ActiveSites {
    ActiveSites::from_config(&config(), |route| match route {
        Route::Sip => sip_role,
        Route::Stun => stun_role,
    })
}

pub(crate) fn settings() -> RenderSettings {
    RenderSettings::from_config(&config())
}

pub(crate) fn mac(n: u64) -> Mac {
    let b = n.to_be_bytes();
    Mac::new([0x00, 0x15, b[4], b[5], b[6], b[7]])
}

pub(crate) fn phone(n: u64, vendor: Vendor) -> Phone {
    Phone {
        mac: mac(n),
        vendor,
        model: "T46S".to_owned(),
        display_name: format!("Desk {n}"),
        user_id: format!("{}", 1000 + n),
        auth_id: String::new(),
        password: SecretString::from(format!("pw-{n}")),
        prov_password: None,
    }
}

/// `count` phones, alternating Yealink and Linksys.
pub(crate) fn phones(count: u64) -> Vec<Phone> {
    (0..count).map(|n| phone(n, if n % 2 == 0 { Vendor::Yealink } else { Vendor::Linksys })).collect()
}
