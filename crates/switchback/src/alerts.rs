//! `switchback alerts test`: one test alert to every webhook, and what each answered.

use switchback_alerts::{sender, AlertMessage, Attempt};
use switchback_core::{Clock, Config, SystemClock};

/// True when every webhook took its test alert.
pub async fn test(config: Config) -> anyhow::Result<bool> {
    if config.alerts.is_empty() {
        println!("no [[alerts]] webhooks configured");
        return Ok(true);
    }
    let client = sender::client()?;
    let names = config.site_names();
    let now = SystemClock.now();
    let id = format!("msg_sbtest{}", now.timestamp_micros());
    let message = AlertMessage::test(id, now, 0, &names);
    let mut all_ok = true;
    for webhook in &config.alerts {
        let answer = match sender::send(&client, webhook, &message, now).await {
            Attempt::Delivered(status) => format!("delivered ({status})"),
            Attempt::Skipped => "skipped by this format".to_owned(),
            Attempt::Retry { error, .. } => {
                all_ok = false;
                format!("NOT delivered, would retry: {error}")
            }
            Attempt::Failed { error, .. } => {
                all_ok = false;
                format!("NOT delivered, refused: {error}")
            }
        };
        let format = format!("{:?}", webhook.format).to_lowercase();
        println!("{:<16} {:<10} {:<48} {answer}", webhook.name, format, webhook.url.as_str());
    }
    Ok(all_ok)
}
