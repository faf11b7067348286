//! Names of phone files, as phones request them (`/prov/{vendor}/{file}`) and as they
//! are written to a render folder. Parsing is strict: one phone file has exactly one
//! name, and nothing from a request ever reaches the file system.

use std::fmt;

use crate::mac::Mac;
use crate::phone::Vendor;

/// A Yealink model code, the `xx` of `y0000000000xx.cfg` (`28` for a T46G, `66` for the
/// T4xS series, …). Any two hex digits are accepted; every code gets the same file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ModelCode(pub u8);

impl fmt::Display for ModelCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}", self.0)
    }
}

/// The model codes whose common file a render folder holds, so that a plain web or TFTP
/// server answers them: the SIP-T19P E2 (53), T21P E2 (52), T23 (44), T27P (45),
/// T27G (69), T29G (46), T40P (54), T40G (76), T41P (36), T42G (29), T46G (28), T48G (35),
/// T49G (51), T4xS (66), T5x (70), T56A/T58 (58), CP860 (37), CP920 (78), W52P (25),
/// W60B (77). switchback itself serves any code over HTTP.
pub const YEALINK_MODEL_CODES: [ModelCode; 20] = [
    ModelCode(0x25),
    ModelCode(0x28),
    ModelCode(0x29),
    ModelCode(0x35),
    ModelCode(0x36),
    ModelCode(0x37),
    ModelCode(0x44),
    ModelCode(0x45),
    ModelCode(0x46),
    ModelCode(0x51),
    ModelCode(0x52),
    ModelCode(0x53),
    ModelCode(0x54),
    ModelCode(0x58),
    ModelCode(0x66),
    ModelCode(0x69),
    ModelCode(0x70),
    ModelCode(0x76),
    ModelCode(0x77),
    ModelCode(0x78),
];

/// One phone file's name. `Display` gives the path below `/prov/` and below a render
/// folder: `yealink/0015651234ab.cfg`, `yealink/y000000000028.cfg`, `linksys/spa0015651234ab.xml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileName {
    /// `yealink/{mac}.cfg`
    YealinkPhone(Mac),
    /// `yealink/y0000000000{xx}.cfg`
    YealinkCommon(ModelCode),
    /// `linksys/spa{mac}.xml`
    LinksysPhone(Mac),
}

const YEALINK_COMMON_PREFIX: &str = "y0000000000";

impl FileName {
    /// Parses `/prov/{vendor_path}/{file_name}`. Only the exact shapes above match: 12 hex
    /// digits in either case, a lowercase `spa` prefix and `.cfg`/`.xml` suffix.
    pub fn parse(vendor_path: &str, file_name: &str) -> Option<Self> {
        match vendor_path {
            "yealink" => {
                let stem = file_name.strip_suffix(".cfg")?;
                if let Some(code) = stem.strip_prefix(YEALINK_COMMON_PREFIX) {
                    return parse_model_code(code).map(Self::YealinkCommon);
                }
                Mac::from_hex12(stem).map(Self::YealinkPhone)
            }
            "linksys" => {
                let stem = file_name.strip_prefix("spa")?.strip_suffix(".xml")?;
                Mac::from_hex12(stem).map(Self::LinksysPhone)
            }
            _ => None,
        }
    }

    /// The file of a phone of `vendor`.
    pub fn for_phone(vendor: Vendor, mac: Mac) -> Self {
        match vendor {
            Vendor::Yealink => Self::YealinkPhone(mac),
            Vendor::Linksys => Self::LinksysPhone(mac),
        }
    }

    pub fn vendor(self) -> Vendor {
        match self {
            Self::YealinkPhone(_) | Self::YealinkCommon(_) => Vendor::Yealink,
            Self::LinksysPhone(_) => Vendor::Linksys,
        }
    }

    /// The phone the file belongs to; `None` for a model-wide file.
    pub fn mac(self) -> Option<Mac> {
        match self {
            Self::YealinkPhone(mac) | Self::LinksysPhone(mac) => Some(mac),
            Self::YealinkCommon(_) => None,
        }
    }

    /// The name within the vendor's folder (`0015651234ab.cfg`).
    pub fn file_name(self) -> String {
        match self {
            Self::YealinkPhone(mac) => format!("{mac}.cfg"),
            Self::YealinkCommon(code) => format!("{YEALINK_COMMON_PREFIX}{code}.cfg"),
            Self::LinksysPhone(mac) => format!("spa{mac}.xml"),
        }
    }

    /// `text/plain; charset=utf-8` for Yealink `.cfg`, `application/xml` for SPA `.xml`.
    pub fn content_type(self) -> &'static str {
        match self.vendor() {
            Vendor::Yealink => CONTENT_TYPE_CFG,
            Vendor::Linksys => CONTENT_TYPE_XML,
        }
    }
}

pub const CONTENT_TYPE_CFG: &str = "text/plain; charset=utf-8";
pub const CONTENT_TYPE_XML: &str = "application/xml";

fn parse_model_code(code: &str) -> Option<ModelCode> {
    if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u8::from_str_radix(code, 16).ok().map(ModelCode)
}

impl fmt::Display for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.vendor(), self.file_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: Mac = Mac::new([0x00, 0x15, 0x65, 0x12, 0x34, 0xab]);

    #[test]
    fn good_names_parse_and_display_canonically() {
        let cases = [
            ("yealink", "0015651234ab.cfg", FileName::YealinkPhone(MAC), "yealink/0015651234ab.cfg"),
            ("yealink", "0015651234AB.cfg", FileName::YealinkPhone(MAC), "yealink/0015651234ab.cfg"),
            (
                "yealink",
                "y000000000028.cfg",
                FileName::YealinkCommon(ModelCode(0x28)),
                "yealink/y000000000028.cfg",
            ),
            (
                "yealink",
                "y0000000000Ab.cfg",
                FileName::YealinkCommon(ModelCode(0xab)),
                "yealink/y0000000000ab.cfg",
            ),
            ("linksys", "spa0015651234ab.xml", FileName::LinksysPhone(MAC), "linksys/spa0015651234ab.xml"),
            ("linksys", "spa0015651234AB.xml", FileName::LinksysPhone(MAC), "linksys/spa0015651234ab.xml"),
        ];
        for (vendor, name, expected, display) in cases {
            assert_eq!(FileName::parse(vendor, name), Some(expected), "{vendor}/{name}");
            assert_eq!(expected.to_string(), display);
        }
    }

    #[test]
    fn malformed_names_do_not_parse() {
        let cases = [
            ("yealink", "../0015651234ab.cfg"),
            ("yealink", "..%2F0015651234ab.cfg"),
            ("yealink", "0015651234ab.cfg/"),
            ("yealink", "0015651234ab.CFG"),
            ("yealink", "0015651234ab.xml"),
            ("yealink", "0015651234ab"),
            ("yealink", "0015651234a.cfg"),
            ("yealink", "0015651234abc.cfg"),
            ("yealink", "00:15:65:12:34:ab.cfg"),
            ("yealink", "0015651234ag.cfg"),
            ("yealink", "y00000000028.cfg"),
            ("yealink", "y0000000000028.cfg"),
            ("yealink", "y0000000000zz.cfg"),
            ("yealink", "Y000000000028.cfg"),
            ("yealink", "spa0015651234ab.xml"),
            ("linksys", "0015651234ab.xml"),
            ("linksys", "spa0015651234ab.cfg"),
            ("linksys", "SPA0015651234ab.xml"),
            ("linksys", "spa0015651234ab.XML"),
            ("linksys", "spa../../etc/passwd"),
            ("linksys", "spa$MA.xml"),
            ("polycom", "0015651234ab.cfg"),
            ("Yealink", "0015651234ab.cfg"),
            ("", ""),
        ];
        for (vendor, name) in cases {
            assert_eq!(FileName::parse(vendor, name), None, "{vendor}/{name}");
        }
    }

    #[test]
    fn model_codes_are_listed_once_each() {
        let mut codes = YEALINK_MODEL_CODES.to_vec();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), YEALINK_MODEL_CODES.len());
    }
}
