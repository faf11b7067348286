//! MAC addresses: parsed from any common spelling, always shown as 12 lowercase hex digits.
//!
//! Written by hand rather than with a MAC crate because none reads the bare `0015651234ab`
//! form that phone vendors use in file names, and the import needs errors that say what
//! is wrong with the value an operator typed.

use std::fmt;
use std::str::FromStr;

/// A 48-bit MAC address. `Display` gives the spelling phones use in file names.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mac([u8; 6]);

/// Why a text is not a MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MacError {
    #[error("empty MAC address")]
    Empty,
    #[error("`{input}`: `{ch}` is not a hex digit")]
    BadCharacter { input: String, ch: char },
    #[error("`{input}` mixes separators; use one of `:`, `-` or `.`")]
    MixedSeparators { input: String },
    #[error("`{input}` has {digits} hex digits; a MAC address has 12")]
    WrongLength { input: String, digits: usize },
    #[error(
        "`{input}`: separators must split the address into six pairs (00:15:65:12:34:ab) \
         or three groups of four (0015.6512.34ab)"
    )]
    BadGrouping { input: String },
}

impl Mac {
    pub const fn new(octets: [u8; 6]) -> Self {
        Self(octets)
    }

    pub const fn octets(self) -> [u8; 6] {
        self.0
    }

    /// Exactly 12 hex digits, either case, nothing else: the strict form used for request
    /// names, where a lenient parse would let several URLs name one phone.
    pub fn from_hex12(text: &str) -> Option<Self> {
        let digits = text.as_bytes();
        if digits.len() != 12 {
            return None;
        }
        let mut octets = [0u8; 6];
        for (octet, pair) in octets.iter_mut().zip(digits.chunks_exact(2)) {
            *octet = (hex_value(pair[0])? << 4) | hex_value(pair[1])?;
        }
        Some(Self(octets))
    }

    /// The 12 lowercase hex digits, without allocating.
    pub fn to_hex(self) -> [u8; 12] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 12];
        for (i, octet) in self.0.iter().enumerate() {
            out[2 * i] = HEX[usize::from(octet >> 4)];
            out[2 * i + 1] = HEX[usize::from(octet & 0x0f)];
        }
        out
    }

    /// Lenient parse of the spellings operators use: `0015651234ab`, `00:15:65:12:34:AB`,
    /// `00-15-65-12-34-ab`, `0015.6512.34ab`. Surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Result<Self, MacError> {
        let input = text.trim();
        if input.is_empty() {
            return Err(MacError::Empty);
        }
        let owned = || input.to_owned();
        if let Some(ch) = input.chars().find(|c| !c.is_ascii_hexdigit() && !matches!(c, ':' | '-' | '.')) {
            return Err(MacError::BadCharacter { input: owned(), ch });
        }
        let mut separators = input.chars().filter(|c| !c.is_ascii_hexdigit());
        let separator = separators.next();
        if separators.any(|c| Some(c) != separator) {
            return Err(MacError::MixedSeparators { input: owned() });
        }
        let digits: String = input.chars().filter(char::is_ascii_hexdigit).collect();
        if digits.len() != 12 {
            return Err(MacError::WrongLength { input: owned(), digits: digits.len() });
        }
        let group_len = match separator {
            None => 12,
            Some(':' | '-') => 2,
            Some(_) => 4,
        };
        if input.split(|c: char| !c.is_ascii_hexdigit()).any(|group| group.len() != group_len) {
            return Err(MacError::BadGrouping { input: owned() });
        }
        // Twelve hex digits were counted above, so the strict parse cannot fail.
        Self::from_hex12(&digits).ok_or(MacError::WrongLength { input: owned(), digits: digits.len() })
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

impl FromStr for Mac {
    type Err = MacError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.to_hex();
        // `to_hex` only produces ASCII hex digits.
        f.write_str(std::str::from_utf8(&hex).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mac({self})")
    }
}

impl serde::Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Mac {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test that cannot unwrap has failed
mod tests {
    use super::*;

    const MAC: Mac = Mac::new([0x00, 0x15, 0x65, 0x12, 0x34, 0xab]);

    #[test]
    fn every_common_spelling_parses_to_the_same_mac() {
        for text in [
            "0015651234ab",
            "0015651234AB",
            "00:15:65:12:34:AB",
            "00-15-65-12-34-ab",
            "0015.6512.34ab",
            "  00:15:65:12:34:ab\t",
        ] {
            assert_eq!(Mac::parse(text), Ok(MAC), "{text}");
        }
        assert_eq!(MAC.to_string(), "0015651234ab");
        assert_eq!(format!("{MAC:?}"), "Mac(0015651234ab)");
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let cases = [
            ("", "empty MAC address"),
            ("00:15:65:12:34:ag", "`00:15:65:12:34:ag`: `g` is not a hex digit"),
            ("00:15:65-12:34:ab", "`00:15:65-12:34:ab` mixes separators; use one of `:`, `-` or `.`"),
            ("00:15:65:12:34", "`00:15:65:12:34` has 10 hex digits; a MAC address has 12"),
            ("0015651234abc", "`0015651234abc` has 13 hex digits; a MAC address has 12"),
            ("0015:6512:34ab", "separators must split"),
            ("0.0.15651234ab", "separators must split"),
            ("00 15 65 12 34 ab", "` ` is not a hex digit"),
        ];
        for (text, expected) in cases {
            let err = Mac::parse(text).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }

    #[test]
    fn strict_form_takes_exactly_twelve_hex_digits() {
        assert_eq!(Mac::from_hex12("0015651234AB"), Some(MAC));
        for bad in ["0015651234a", "0015651234abc", "00:15:65:12:34", "0015651234ag", "", "+015651234ab"] {
            assert_eq!(Mac::from_hex12(bad), None, "{bad}");
        }
    }

    #[test]
    fn serde_round_trips_as_the_display_form() {
        let json = serde_json::to_string(&MAC).unwrap();
        assert_eq!(json, "\"0015651234ab\"");
        assert_eq!(serde_json::from_str::<Mac>("\"00:15:65:12:34:AB\"").unwrap(), MAC);
    }
}
