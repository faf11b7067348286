//! `slack`: `{"text": …}` for an incoming webhook, readable by a person at 3 a.m.

use serde_json::json;

use crate::kind::AlertKind;
use crate::message::AlertMessage;
use crate::Prepared;

pub fn prepare(message: &AlertMessage) -> Prepared {
    let mark = match message.kind {
        AlertKind::Failover | AlertKind::BothDown | AlertKind::MonitorBlind => ":rotating_light:",
        AlertKind::PrimaryServiceDown
        | AlertKind::SafetyNetGone
        | AlertKind::FailbackReady
        | AlertKind::ProvisioningScan => ":warning:",
        AlertKind::Failback | AlertKind::MonitorSighted | AlertKind::Converged => ":white_check_mark:",
        _ => ":information_source:",
    };
    let mut text = format!("{mark} *{}*", message.summary);
    text.push_str(&format!(
        "\n{} · generation {} · event {}",
        message.time.format("%Y-%m-%d %H:%M:%S UTC"),
        message.generation,
        message.id
    ));
    Prepared { headers: Vec::new(), body: json!({ "text": text }).to_string() }
}
