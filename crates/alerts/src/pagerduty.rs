//! `pagerduty`: Events API v2. One `dedup_key` per incident (per route outage, per
//! backup service, the monitor), so a failback resolves what the failover triggered and
//! repeated triggers while an incident is open fold into it instead of paging again.

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::kind::IncidentAction;
use crate::message::AlertMessage;
use crate::{AlertError, Prepared};

/// `None`: this alert is not for PagerDuty.
pub fn prepare(message: &AlertMessage, routing_key: &SecretString) -> Result<Option<Prepared>, AlertError> {
    let Some(incident) = message.kind.incident(&message.event) else { return Ok(None) };
    let mut body = json!({
        "routing_key": routing_key.expose_secret(),
        "event_action": incident.action,
        "dedup_key": incident.dedup_key,
    });
    if incident.action == IncidentAction::Trigger {
        body["payload"] = json!({
            "summary": message.summary,
            "source": "switchback",
            "severity": incident.severity,
            "timestamp": message.time.to_rfc3339(),
            "component": message.service.map(|s| s.as_str()).or(message.route.map(|r| r.as_str())),
            "group": message.site,
            "class": message.kind,
            "custom_details": message,
        });
    }
    let body = serde_json::to_string(&body).map_err(|e| AlertError::Encode(e.to_string()))?;
    Ok(Some(Prepared { headers: Vec::new(), body }))
}
