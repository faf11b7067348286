//! `slack`: `{"text": …}` for an incoming webhook, readable by a person at 3 a.m.
//!
//! Slack reads `<…>` in the text as a link or a mention (`<!channel>` pings everyone), so
//! the summary, which carries reasons, actor and site names from outside, is escaped
//! whole the way Slack documents (`&amp;`, `&lt;`, `&gt;`); Slack shows the characters
//! themselves. Our own markup (`*bold*`, `:emoji:`) is added around it, after escaping.

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
    let mut text = format!("{mark} *{}*", escape(&message.summary));
    text.push_str(&format!(
        "\n{} · generation {} · event {}",
        message.time.format("%Y-%m-%d %H:%M:%S UTC"),
        message.generation,
        escape(&message.id)
    ));
    Prepared { headers: Vec::new(), body: json!({ "text": text }).to_string() }
}

/// Text that Slack shows as it is: `&`, `<` and `>` escaped as Slack's docs ask
/// ("Escaping text" in its message formatting guide), so it cannot form a mention or a link.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn control_characters_are_escaped_and_nothing_else() {
        assert_eq!(escape("<!channel>"), "&lt;!channel&gt;");
        assert_eq!(escape("<https://evil|click>"), "&lt;https://evil|click&gt;");
        assert_eq!(escape("a & b -> c"), "a &amp; b -&gt; c");
        assert_eq!(escape("&amp;"), "&amp;amp;", "escaped text is escaped again, not trusted");
        assert_eq!(escape("*bold* :warning: chicago"), "*bold* :warning: chicago");
    }
}
