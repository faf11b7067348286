//! The phone inventory record and the rules every phone must pass before it is rendered.

use std::fmt;
use std::str::FromStr;

use secrecy::{ExposeSecret, SecretString};

use crate::limits;
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

/// One provisioned phone. `Debug` shows both passwords as `[REDACTED]`.
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
    /// The password the phone fetches its own file with (HTTP Digest; the username is
    /// the MAC as 12 lowercase hex digits), written into its file so that it keeps it.
    /// `None`: the phone has none (an empty CSV cell, or a seven-column CSV).
    pub prov_password: Option<SecretString>,
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
    /// allowed in XML, so text fields may hold neither; every field has a length limit
    /// ([`limits`]); `prov_password` may not be empty and may not hold
    /// white space or a character the SPA profile rule gives a meaning to.
    pub fn validate(&self) -> Result<(), PhoneError> {
        check_text("model", &self.model, false, limits::MODEL)?;
        check_text("display_name", &self.display_name, false, limits::DISPLAY_NAME)?;
        check_text("user_id", &self.user_id, true, limits::USER_ID)?;
        check_text("auth_id", &self.auth_id, false, limits::AUTH_ID)?;
        check_text("password", self.password.expose_secret(), false, limits::PASSWORD)?;
        if let Some(prov_password) = &self.prov_password {
            check_prov_password(prov_password.expose_secret())?;
        }
        Ok(())
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
pub(crate) fn check_text(
    field: &'static str,
    value: &str,
    required: bool,
    max_chars: usize,
) -> Result<(), PhoneError> {
    // A byte length within the limit is a character count within it too.
    if value.len() > max_chars && value.chars().count() > max_chars {
        return Err(PhoneError { field, problem: format!("is longer than {max_chars} characters") });
    }
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

/// `prov_password` goes into the SPA profile rule's option syntax
/// (`[--uid {mac} --pwd {prov_password}]{url}`), which the phone reads before any URL:
/// a character that syntax gives a meaning to would change the rule, not the password.
fn check_prov_password(value: &str) -> Result<(), PhoneError> {
    const FIELD: &str = "prov_password";
    if value.is_empty() {
        return Err(PhoneError {
            field: FIELD,
            problem: "must not be empty (a phone without one has no provisioning password)".to_owned(),
        });
    }
    check_text(FIELD, value, false, limits::PROV_PASSWORD)?;
    let conflict = value.chars().enumerate().find_map(|(i, ch)| Some((i, ch, profile_rule_conflict(ch)?)));
    if let Some((index, ch, why)) = conflict {
        let what = match ch {
            _ if ch.is_whitespace() => format!("white space (U+{:04X})", u32::from(ch)),
            '`' => "`` ` ``".to_owned(),
            _ => format!("`{ch}`"),
        };
        let at = index + 1;
        return Err(PhoneError {
            field: FIELD,
            problem: format!("may not contain {what} at character {at} ({why})"),
        });
    }
    Ok(())
}

/// Why `ch` cannot be part of a `prov_password`, if it cannot: the SPA macro-expands the
/// profile rule (`$`), reads `#` as the start of a comment and `|` between alternatives,
/// ends an option at white space and the options at `]`, and firmware differs in how it
/// treats quotes and backslashes. `<`, `>` and `&` are kept out so that the rule's text
/// is the same in the XML file as in the phone, escaped or not.
fn profile_rule_conflict(ch: char) -> Option<&'static str> {
    Some(match ch {
        c if c.is_whitespace() => "it would end the SPA profile rule's --pwd option",
        '$' => "the SPA profile rule would expand it",
        '#' => "the SPA profile rule would read the rest as a comment",
        '|' => "the SPA profile rule would read it as a separator of alternatives",
        '[' | ']' => "the SPA profile rule encloses its options in brackets",
        '"' | '\'' | '`' => "the SPA profile rule may read it as a quote",
        '\\' => "the SPA profile rule may read it as an escape",
        '<' | '>' | '&' => "the SPA profile rule is XML text",
        _ => return None,
    })
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
            prov_password: Some(SecretString::from("prov-Secret_9")),
        }
    }

    #[test]
    fn debug_hides_the_passwords() {
        let debug = format!("{:?}", phone());
        assert!(!debug.contains("hunter2-secret"), "{debug}");
        assert!(!debug.contains("prov-Secret_9"), "{debug}");
        assert_eq!(debug.matches("REDACTED").count(), 2, "{debug}");
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
        let cases: [(Edit, &str, &str); 7] = [
            (|p| p.display_name = "Bob\nstatic.x = 1".into(), "display_name", "a line break at character 4"),
            (|p| p.user_id = "  ".into(), "user_id", "must not be empty"),
            (|p| p.auth_id = "a\u{7}".into(), "auth_id", "control character U+0007 at character 2"),
            (|p| p.model = "T46\u{2028}".into(), "model", "a line break"),
            (|p| p.password = SecretString::from("pw\r"), "password", "a line break"),
            (|p| p.prov_password = Some("pw\n".into()), "prov_password", "a line break at character 3"),
            (|p| p.prov_password = Some("p\u{1b}".into()), "prov_password", "control character U+001B"),
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
    fn every_field_has_a_length_limit() {
        type Edit = fn(&mut Phone, String);
        let cases: [(Edit, &str, usize); 6] = [
            (|p, v| p.model = v, "model", limits::MODEL),
            (|p, v| p.display_name = v, "display_name", limits::DISPLAY_NAME),
            (|p, v| p.user_id = v, "user_id", limits::USER_ID),
            (|p, v| p.auth_id = v, "auth_id", limits::AUTH_ID),
            (|p, v| p.password = v.into(), "password", limits::PASSWORD),
            (|p, v| p.prov_password = Some(v.into()), "prov_password", limits::PROV_PASSWORD),
        ];
        for (edit, field, max) in cases {
            // Characters, not bytes: `é` is two bytes.
            let mut p = phone();
            edit(&mut p, "é".repeat(max));
            assert_eq!(p.validate(), Ok(()), "{field} at its limit");
            edit(&mut p, "x".repeat(max + 1));
            let err = p.validate().err().unwrap_or_else(|| panic!("{field} over its limit accepted"));
            assert_eq!(err.field, field);
            assert_eq!(err.problem, format!("is longer than {max} characters"));
        }
    }

    #[test]
    fn prov_password_keeps_out_of_the_spa_profile_rule_syntax() {
        let mut p = phone();
        p.prov_password = Some("A-z_0.9~!%^*()+=,;:?@{}/".into());
        assert_eq!(p.validate(), Ok(()));
        p.prov_password = None;
        assert_eq!(p.validate(), Ok(()));

        for (value, needle) in [
            ("a b", "may not contain white space (U+0020) at character 2 (it would end"),
            ("a\u{a0}b", "white space (U+00A0)"),
            ("pa$MA", "may not contain `$` at character 3 (the SPA profile rule would expand it)"),
            ("x#y", "`#` at character 2 (the SPA profile rule would read the rest as a comment)"),
            ("x|y", "`|`"),
            ("[x", "`[`"),
            ("x]", "`]`"),
            ("\"x", "`\"`"),
            ("'x", "`'`"),
            ("`x", "`` ` ``"),
            ("x\\", "`\\`"),
            ("<x", "`<`"),
            ("x>", "`>`"),
            ("x&", "`&`"),
            ("", "must not be empty"),
        ] {
            let mut p = phone();
            p.prov_password = Some(value.into());
            let err = p.validate().err().unwrap_or_else(|| panic!("{value:?} accepted"));
            assert_eq!(err.field, "prov_password");
            assert!(err.problem.contains(needle), "{value:?}: {}", err.problem);
            if value.len() > 1 {
                assert!(!err.to_string().contains(value), "the value is quoted: {err}");
            }
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
