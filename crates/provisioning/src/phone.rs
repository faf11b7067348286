//! The phone inventory record and the rules every phone must pass before it is rendered.

use std::fmt;
use std::str::FromStr;

use secrecy::{ExposeSecret, SecretString};

use crate::mac::Mac;

/// Which family of provisioning files a phone reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Vendor {
    /// `{mac}.cfg` key = value files.
    Yealink,
    /// Linksys/Cisco SPA `spa{mac}.xml` flat profiles.
    Linksys,
}

impl Vendor {
    pub const ALL: [Vendor; 2] = [Vendor::Yealink, Vendor::Linksys];

    /// The spelling used in the CSV, the store and the URL path (`/prov/{vendor}/…`).
    pub fn as_str(self) -> &'static str {
        match self {
            Vendor::Yealink => "yealink",
            Vendor::Linksys => "linksys",
        }
    }
}

impl fmt::Display for Vendor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A vendor name that is neither `yealink` nor `linksys`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown vendor `{0}` (use `yealink` or `linksys`)")]
pub struct UnknownVendor(pub String);

impl FromStr for Vendor {
    type Err = UnknownVendor;

    /// Case-insensitive, so that a spreadsheet's `Yealink` imports.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Vendor::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownVendor(s.to_owned()))
    }
}

/// One provisioned phone. `Debug` shows the password as `[REDACTED]`.
#[derive(Debug, Clone)]
pub struct Phone {
    pub mac: Mac,
    pub vendor: Vendor,
    /// Free text for operators (`T46S`, `SPA504G`); not used in the files.
    pub model: String,
    /// May be empty: the phone then shows its `user_id`.
    pub display_name: String,
    /// The SIP user the phone registers as. Never empty.
    pub user_id: String,
    /// The SIP authentication user when it differs from `user_id`; empty when it does not.
    pub auth_id: String,
    pub password: SecretString,
}

/// A phone field that breaks a rule; `problem` never quotes the value (it may be a password).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field {field}: {problem}")]
pub struct PhoneError {
    pub field: &'static str,
    pub problem: String,
}

impl Phone {
    /// The rules a phone passes before any file is rendered for it, wherever it came from.
    /// A line break could add keys to a Yealink file, and control characters are not
    /// allowed in XML, so text fields may hold neither.
    pub fn validate(&self) -> Result<(), PhoneError> {
        check_text("model", &self.model, false)?;
        check_text("display_name", &self.display_name, false)?;
        check_text("user_id", &self.user_id, true)?;
        check_text("auth_id", &self.auth_id, false)?;
        check_text("password", self.password.expose_secret(), false)
    }

    /// The user the phone authenticates as: `auth_id`, or `user_id` when that is empty.
    pub fn auth_name(&self) -> &str {
        if self.auth_id.is_empty() {
            &self.user_id
        } else {
            &self.auth_id
        }
    }

    /// What the phone's screen shows: `display_name`, or `user_id` when that is empty.
    pub fn label(&self) -> &str {
        if self.display_name.is_empty() {
            &self.user_id
        } else {
            &self.display_name
        }
    }
}

/// Checks one text field. Shared with the CSV import so both apply the same rules.
pub(crate) fn check_text(field: &'static str, value: &str, required: bool) -> Result<(), PhoneError> {
    if required && value.trim().is_empty() {
        return Err(PhoneError { field, problem: "must not be empty".to_owned() });
    }
    if let Some((index, ch)) = value.chars().enumerate().find(|(_, c)| forbidden(*c)) {
        let what = if is_line_break(ch) {
            "a line break".to_owned()
        } else {
            format!("control character U+{:04X}", u32::from(ch))
        };
        return Err(PhoneError { field, problem: format!("contains {what} at character {}", index + 1) });
    }
    Ok(())
}

fn is_line_break(ch: char) -> bool {
    matches!(ch, '\n' | '\r' | '\u{0b}' | '\u{0c}' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn forbidden(ch: char) -> bool {
    // U+FFFE and U+FFFF are not characters in XML 1.0.
    ch.is_control() || is_line_break(ch) || matches!(ch, '\u{fffe}' | '\u{ffff}')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phone() -> Phone {
        Phone {
            mac: Mac::new([0, 0x15, 0x65, 1, 2, 3]),
            vendor: Vendor::Yealink,
            model: "T46S".to_owned(),
            display_name: "Front desk".to_owned(),
            user_id: "1001".to_owned(),
            auth_id: String::new(),
            password: SecretString::from("hunter2-secret"),
        }
    }

    #[test]
    fn debug_hides_the_password() {
        let debug = format!("{:?}", phone());
        assert!(!debug.contains("hunter2-secret"), "{debug}");
        assert!(debug.contains("REDACTED"), "{debug}");
    }

    #[test]
    fn vendor_text_round_trips() {
        for vendor in Vendor::ALL {
            assert_eq!(vendor.as_str().parse::<Vendor>(), Ok(vendor));
        }
        assert_eq!("Yealink".parse::<Vendor>(), Ok(Vendor::Yealink));
        assert!("polycom".parse::<Vendor>().is_err());
    }

    #[test]
    fn validate_rejects_breaks_controls_and_empty_user() {
        assert_eq!(phone().validate(), Ok(()));
        type Edit = fn(&mut Phone);
        let cases: [(Edit, &str, &str); 5] = [
            (|p| p.display_name = "Bob\nstatic.x = 1".into(), "display_name", "a line break at character 4"),
            (|p| p.user_id = "  ".into(), "user_id", "must not be empty"),
            (|p| p.auth_id = "a\u{7}".into(), "auth_id", "control character U+0007 at character 2"),
            (|p| p.model = "T46\u{2028}".into(), "model", "a line break"),
            (|p| p.password = SecretString::from("pw\r"), "password", "a line break"),
        ];
        for (edit, field, problem) in cases {
            let mut p = phone();
            edit(&mut p);
            let err = p.validate().err().unwrap_or_else(|| panic!("{field} accepted"));
            assert_eq!(err.field, field);
            assert!(err.problem.contains(problem), "{field}: {}", err.problem);
        }
    }

    #[test]
    fn fallbacks_for_empty_auth_id_and_display_name() {
        let mut p = phone();
        assert_eq!(p.auth_name(), "1001");
        p.auth_id = "auth1001".into();
        assert_eq!(p.auth_name(), "auth1001");
        assert_eq!(p.label(), "Front desk");
        p.display_name.clear();
        assert_eq!(p.label(), "1001");
    }
}
