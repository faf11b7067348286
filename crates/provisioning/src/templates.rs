//! The askama phone templates (`templates/` at the workspace root) and the values they
//! share within one generation.

use askama::Template;
use secrecy::ExposeSecret;
use switchback_core::config::Transport;

use crate::mac::Mac;
use crate::phone::Phone;
use crate::sites::{ActiveSites, RenderSettings};

/// Everything a file says that is the same for every phone of a generation, formatted
/// once per generation rather than once per phone.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) yealink_url: String,
    pub(crate) profile_rule: String,
    pub(crate) poll_minutes: u64,
    pub(crate) poll_seconds: u64,
    pub(crate) sip_host: String,
    pub(crate) sip_port: u16,
    /// Yealink's code: 0 UDP, 1 TCP (2 TLS is not offered by the config).
    pub(crate) yealink_transport: u8,
    pub(crate) spa_transport: &'static str,
    pub(crate) spa_proxy: String,
    pub(crate) stun_host: String,
    pub(crate) stun_port: u16,
    pub(crate) spa_stun: String,
}

impl Shared {
    pub(crate) fn new(sites: &ActiveSites, settings: &RenderSettings) -> Self {
        let (yealink_transport, spa_transport) = match sites.sip.transport {
            Transport::Udp => (0, "UDP"),
            Transport::Tcp => (1, "TCP"),
            Transport::Tls => (2, "TLS"),
        };
        Self {
            yealink_url: settings.vendor_url("yealink"),
            // `$MA` is the SPA's own macro for its MAC, expanded by the phone.
            profile_rule: format!("{}spa$MA.xml", settings.vendor_url("linksys")),
            poll_minutes: settings.poll_minutes(),
            poll_seconds: settings.poll_seconds(),
            sip_host: sites.sip.host.clone(),
            sip_port: sites.sip.port,
            yealink_transport,
            spa_transport,
            spa_proxy: host_port(&sites.sip.host, sites.sip.port),
            stun_host: sites.stun.host.clone(),
            stun_port: sites.stun.port,
            spa_stun: host_port(&sites.stun.host, sites.stun.port),
        }
    }
}

/// `host:port`, with an IPv6 literal in brackets.
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[derive(Template)]
#[template(path = "yealink_mac.cfg", escape = "none")]
struct YealinkMac<'a> {
    s: &'a Shared,
    mac: Mac,
    phone: &'a Phone,
    password: &'a str,
    prov_password: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "yealink_common.cfg", escape = "none")]
struct YealinkCommon;

/// `.xml`, so askama escapes every value for XML.
#[derive(Template)]
#[template(path = "spa.xml")]
struct Spa<'a> {
    s: &'a Shared,
    mac: Mac,
    phone: &'a Phone,
    password: &'a str,
    prov_password: Option<&'a str>,
}

/// Room for the values on top of the templates' literal text, so that one allocation
/// usually suffices.
const VALUES_HINT: usize = 256;

pub(crate) fn yealink_mac(s: &Shared, phone: &Phone) -> Result<String, askama::Error> {
    let template = YealinkMac {
        s,
        mac: phone.mac,
        phone,
        password: phone.password.expose_secret(),
        prov_password: prov_password(phone),
    };
    render(&template, YealinkMac::SIZE_HINT)
}

/// With a provisioning password, the profile rule gains the SPA's URL options for HTTP
/// authentication in front of the shared URL: `[--uid {mac} --pwd {prov_password}]{url}`.
/// [`Phone::validate`] keeps out of the password whatever that syntax gives a meaning to.
pub(crate) fn spa(s: &Shared, phone: &Phone) -> Result<String, askama::Error> {
    let template = Spa {
        s,
        mac: phone.mac,
        phone,
        password: phone.password.expose_secret(),
        prov_password: prov_password(phone),
    };
    render(&template, Spa::SIZE_HINT)
}

fn prov_password(phone: &Phone) -> Option<&str> {
    phone.prov_password.as_ref().map(ExposeSecret::expose_secret)
}

pub(crate) fn yealink_common() -> Result<String, askama::Error> {
    render(&YealinkCommon, YealinkCommon::SIZE_HINT)
}

fn render(template: &impl Template, size_hint: usize) -> Result<String, askama::Error> {
    let mut out = String::with_capacity(size_hint + VALUES_HINT);
    template.render_into(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::host_port;

    #[test]
    fn ipv6_literals_get_brackets() {
        assert_eq!(host_port("sip.example", 5060), "sip.example:5060");
        assert_eq!(host_port("2001:db8::1", 5060), "[2001:db8::1]:5060");
        assert_eq!(host_port("[2001:db8::1]", 3478), "[2001:db8::1]:3478");
    }
}
