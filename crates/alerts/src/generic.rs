//! `generic`: the alert as JSON, signed per the Standard Webhooks spec:
//! `webhook-id`, `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256 of
//! id.timestamp.body>` keyed with the `whsec_` secret, base64-decoded.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use crate::message::AlertMessage;
use crate::{AlertError, Prepared};

pub fn prepare(
    message: &AlertMessage,
    secret: Option<&SecretString>,
    now: DateTime<Utc>,
) -> Result<Prepared, AlertError> {
    let body = serde_json::to_string(message).map_err(|e| AlertError::Encode(e.to_string()))?;
    let timestamp = now.timestamp().to_string();
    let mut headers = vec![("webhook-id", message.id.clone()), ("webhook-timestamp", timestamp.clone())];
    if let Some(secret) = secret {
        headers.push(("webhook-signature", sign(secret, &message.id, &timestamp, &body)?));
    }
    Ok(Prepared { headers, body })
}

/// `v1,<base64 signature>` of `{id}.{timestamp}.{body}`.
pub fn sign(secret: &SecretString, id: &str, timestamp: &str, body: &str) -> Result<String, AlertError> {
    let key = secret_bytes(secret)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| AlertError::BadSecret)?;
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    Ok(format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes())))
}

fn secret_bytes(secret: &SecretString) -> Result<Vec<u8>, AlertError> {
    let text = secret.expose_secret();
    let encoded = text.strip_prefix("whsec_").unwrap_or(text);
    STANDARD.decode(encoded).map_err(|_| AlertError::BadSecret)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks spec's reference implementations.
    #[test]
    fn signs_like_the_reference_implementation() {
        let secret = SecretString::from("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let signature =
            sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", r#"{"test": 2432232314}"#);
        assert_eq!(signature.ok().as_deref(), Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="));
    }

    #[test]
    fn a_secret_that_is_not_base64_is_refused() {
        let secret = SecretString::from("whsec_not base64!");
        assert!(matches!(sign(&secret, "id", "1", "{}"), Err(AlertError::BadSecret)));
    }
}
