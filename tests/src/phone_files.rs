//! Phone files as a phone reads them, parsed whole and strictly, so that a test can tell
//! where a served file points phones and that nothing in it is cut short or mixed: the
//! Yealink `key = value` file, the Linksys/SPA `<flat-profile>`, and the MD5 that Yealink
//! phones compare (the ETag) computed here, independently of the code under test.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{bail, Context};

/// The first line of every Yealink file.
pub const YEALINK_VERSION_LINE: &str = "#!version:1.0.0.1";

/// Where a phone file points a phone: the softswitch to register with (`host:port`) and
/// the STUN server (`host:port`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pointing {
    pub sip: String,
    pub stun: String,
}

/// A Yealink `{mac}.cfg`: every `key = value` line, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YealinkFile {
    pub keys: BTreeMap<String, String>,
}

impl YealinkFile {
    /// Parses a whole file: the version line first, then only blank lines, `#` comments
    /// and `key = value` lines, each key once, ending with a line break (a file cut short
    /// ends mid-line).
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut lines = text.lines();
        let first = lines.next().context("empty file")?;
        if first != YEALINK_VERSION_LINE {
            bail!("first line is `{first}`, not `{YEALINK_VERSION_LINE}`");
        }
        if !text.ends_with('\n') {
            bail!("the file does not end with a line break (cut short?)");
        }
        let mut keys = BTreeMap::new();
        for (i, line) in lines.enumerate() {
            let number = i + 2;
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line
                .split_once(" = ")
                .with_context(|| format!("line {number} `{line}` is not `key = value`"))?;
            let valid_key = !key.is_empty()
                && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !valid_key {
                bail!("line {number}: `{key}` is not a key");
            }
            if keys.insert(key.to_owned(), value.to_owned()).is_some() {
                bail!("line {number}: key `{key}` appears twice");
            }
        }
        Ok(Self { keys })
    }

    /// The value of `key`, which must be there.
    pub fn get(&self, key: &str) -> anyhow::Result<&str> {
        self.keys.get(key).map(String::as_str).with_context(|| format!("no `{key}`"))
    }

    /// `static.auto_provision.server.username` and `.password`, the credentials the phone
    /// fetches its file with; `None` when the file carries neither, an error for one alone.
    pub fn provisioning_credentials(&self) -> anyhow::Result<Option<(&str, &str)>> {
        let user = self.keys.get("static.auto_provision.server.username");
        let password = self.keys.get("static.auto_provision.server.password");
        match (user, password) {
            (Some(user), Some(password)) => Ok(Some((user, password))),
            (None, None) => Ok(None),
            _ => bail!("a provisioning username without a password, or the reverse"),
        }
    }

    /// `account.1.sip_server.1.address:port` and `static.sip.nat_stun.server:port`.
    pub fn pointing(&self) -> anyhow::Result<Pointing> {
        let port = |key: &str| -> anyhow::Result<u16> {
            let value = self.get(key)?;
            value.parse().with_context(|| format!("`{key}` = `{value}` is not a port"))
        };
        Ok(Pointing {
            sip: format!(
                "{}:{}",
                self.get("account.1.sip_server.1.address")?,
                port("account.1.sip_server.1.port")?
            ),
            stun: format!(
                "{}:{}",
                self.get("static.sip.nat_stun.server")?,
                port("static.sip.nat_stun.port")?
            ),
        })
    }
}

/// A Linksys/SPA `spa{mac}.xml`: the elements of its `<flat-profile>`, in order, with
/// their text unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaFile {
    pub elements: Vec<(String, String)>,
}

impl SpaFile {
    /// Parses a whole profile: an optional XML declaration and comments, one
    /// `<flat-profile>` holding only `<Name ua="na">text</Name>` elements (or empty
    /// `<Name ua="na"/>`), and nothing after it but white space. Enough XML to reject a
    /// file cut short or spliced from two.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut rest = text;
        if let Some(after) = rest.strip_prefix("<?xml") {
            let end = after.find("?>").context("unterminated XML declaration")?;
            rest = &after[end + 2..];
        }
        rest = skip_space_and_comments(rest)?;
        rest = rest.strip_prefix("<flat-profile>").context("no `<flat-profile>` at the top")?;
        let mut elements = Vec::new();
        loop {
            rest = skip_space_and_comments(rest)?;
            if let Some(after) = rest.strip_prefix("</flat-profile>") {
                if !skip_space_and_comments(after)?.is_empty() {
                    bail!("text after `</flat-profile>`");
                }
                break;
            }
            let (element, after) = element(rest)?;
            elements.push(element);
            rest = after;
        }
        Ok(Self { elements })
    }

    /// The text of the element `name`, which must be there once.
    pub fn get(&self, name: &str) -> anyhow::Result<&str> {
        let mut found = self.elements.iter().filter(|(n, _)| n == name);
        let (_, value) = found.next().with_context(|| format!("no `<{name}>`"))?;
        if found.next().is_some() {
            bail!("`<{name}>` appears twice");
        }
        Ok(value)
    }

    /// `Profile_Rule`, read as the phone reads it.
    pub fn profile_rule(&self) -> anyhow::Result<ProfileRule> {
        ProfileRule::parse(self.get("Profile_Rule")?)
    }

    /// `Proxy_1_` and `STUN_Server`, both `host:port`.
    pub fn pointing(&self) -> anyhow::Result<Pointing> {
        Ok(Pointing { sip: self.get("Proxy_1_")?.to_owned(), stun: self.get("STUN_Server")?.to_owned() })
    }
}

/// An SPA profile rule: an optional `[--option value …]` in front of the URL (the Cisco
/// SPA provisioning guide's URL options), of which `--uid` and `--pwd` are the HTTP
/// credentials the phone resyncs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileRule {
    pub uid: Option<String>,
    pub pwd: Option<String>,
    pub url: String,
}

impl ProfileRule {
    /// Strict: only `--uid` and `--pwd`, each once with a value, and a URL without white
    /// space, `[`, `]`, `#` or `|` (which the phone would read as rule syntax).
    pub fn parse(rule: &str) -> anyhow::Result<Self> {
        let (options, url) = match rule.strip_prefix('[') {
            Some(rest) => rest.split_once(']').context("unterminated `[` options")?,
            None => ("", rule),
        };
        let (mut uid, mut pwd) = (None, None);
        let mut words = options.split(' ').filter(|word| !word.is_empty());
        while let Some(option) = words.next() {
            let slot = match option {
                "--uid" => &mut uid,
                "--pwd" => &mut pwd,
                other => bail!("unknown profile rule option `{other}`"),
            };
            let value = words.next().with_context(|| format!("`{option}` without a value"))?;
            if slot.replace(value.to_owned()).is_some() {
                bail!("`{option}` twice");
            }
        }
        if url.is_empty() || url.contains(|c: char| c.is_whitespace() || matches!(c, '[' | ']' | '#' | '|')) {
            bail!("`{url}` is not a profile rule URL");
        }
        Ok(Self { uid, pwd, url: url.to_owned() })
    }
}

fn skip_space_and_comments(mut text: &str) -> anyhow::Result<&str> {
    loop {
        text = text.trim_start();
        match text.strip_prefix("<!--") {
            Some(comment) => {
                let end = comment.find("-->").context("unterminated comment")?;
                text = &comment[end + 3..];
            }
            None => return Ok(text),
        }
    }
}

/// One `<Name ua="na">text</Name>` or `<Name ua="na"/>` at the start of `text`.
fn element(text: &str) -> anyhow::Result<((String, String), &str)> {
    let shown = || text.chars().take(60).collect::<String>();
    let inner = text.strip_prefix('<').with_context(|| format!("expected an element at `{}`", shown()))?;
    let tag_end = inner.find('>').with_context(|| format!("unterminated tag at `{}`", shown()))?;
    let tag = &inner[..tag_end];
    let (tag, empty) = match tag.strip_suffix('/') {
        Some(tag) => (tag, true),
        None => (tag, false),
    };
    let (name, attributes) = tag.split_once(' ').unwrap_or((tag, ""));
    let valid_name = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid_name {
        bail!("`{name}` is not an element name");
    }
    if attributes.trim() != r#"ua="na""# {
        bail!("`<{name}>` has attributes `{attributes}`, expected `ua=\"na\"`");
    }
    let after_tag = &inner[tag_end + 1..];
    if empty {
        return Ok(((name.to_owned(), String::new()), after_tag));
    }
    let close = format!("</{name}>");
    let text_end = after_tag.find(&close).with_context(|| format!("`<{name}>` is never closed"))?;
    let raw = &after_tag[..text_end];
    if raw.contains('<') {
        bail!("`<{name}>` holds markup: `{raw}`");
    }
    Ok(((name.to_owned(), unescape(raw)?), &after_tag[text_end + close.len()..]))
}

fn unescape(raw: &str) -> anyhow::Result<String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let semi = after.find(';').with_context(|| format!("bare `&` in `{raw}`"))?;
        let entity = &after[..semi];
        let decoded = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(hex) = entity.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = entity.strip_prefix('#') {
                    dec.parse().ok()
                } else {
                    None
                };
                code.and_then(char::from_u32).with_context(|| format!("unknown entity `&{entity};`"))?
            }
        };
        out.push(decoded);
        rest = &after[semi + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Parses a served phone file by its URL's vendor folder (`yealink` or `linksys`) and
/// says where it points.
pub fn pointing(vendor: &str, body: &[u8]) -> anyhow::Result<Pointing> {
    let text = std::str::from_utf8(body).context("the file is not UTF-8")?;
    match vendor {
        "yealink" => YealinkFile::parse(text)?.pointing(),
        "linksys" => SpaFile::parse(text)?.pointing(),
        other => bail!("no phone files for vendor `{other}`"),
    }
}

/// The lowercase hex MD5 of `data` (RFC 1321), as Yealink phones compare files.
pub fn md5_hex(data: &[u8]) -> String {
    md5(data).iter().fold(String::with_capacity(32), |mut out, byte| {
        let _ = write!(out, "{byte:02x}");
        out
    })
}

/// MD5 (RFC 1321), written out here so that the ETag check does not lean on the digest
/// code of the server under test. Only ever used on test data.
pub fn md5(data: &[u8]) -> [u8; 16] {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20,
        5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10, 15, 21, 6, 10, 15,
        21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    // K[i] = floor(|sin(i + 1)| * 2^32).
    let k: Vec<u32> = (0..64).map(|i| ((f64::from(i + 1)).sin().abs() * 4_294_967_296.0) as u32).collect();
    let mut state: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];

    let mut message = data.to_vec();
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&((data.len() as u64).wrapping_mul(8)).to_le_bytes());

    for block in message.chunks_exact(64) {
        let m: Vec<u32> = block
            .chunks_exact(4)
            .map(|word| u32::from_le_bytes([word[0], word[1], word[2], word[3]]))
            .collect();
        let [mut a, mut b, mut c, mut d] = state;
        for (i, (&shift, &constant)) in S.iter().zip(&k).enumerate() {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let rotated = a.wrapping_add(f).wrapping_add(constant).wrapping_add(m[g]).rotate_left(shift);
            (a, d, c) = (d, c, b);
            b = b.wrapping_add(rotated);
        }
        for (word, add) in state.iter_mut().zip([a, b, c, d]) {
            *word = word.wrapping_add(add);
        }
    }
    let mut out = [0u8; 16];
    for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test reports failure

    use super::*;

    #[test]
    fn md5_matches_the_rfc_1321_test_suite() {
        let suite = [
            ("", "d41d8cd98f00b204e9800998ecf8427e"),
            ("a", "0cc175b9c0f1b6a831c399e269772661"),
            ("abc", "900150983cd24fb0d6963f7d28e17f72"),
            ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            ("abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"),
            (
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
                "d174ab98d277d9f5a5611c2c9f419d9f",
            ),
            (
                "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ];
        for (input, digest) in suite {
            assert_eq!(md5_hex(input.as_bytes()), digest, "md5({input:?})");
        }
    }

    const YEALINK: &str = "#!version:1.0.0.1\n## comment\n\naccount.1.sip_server.1.address = 127.0.0.2\n\
                           account.1.sip_server.1.port = 5060\nstatic.sip.nat_stun.server = 127.0.0.3\n\
                           static.sip.nat_stun.port = 3478\n";

    #[test]
    fn yealink_files_are_parsed_strictly() {
        let file = YealinkFile::parse(YEALINK).unwrap();
        assert_eq!(
            file.pointing().unwrap(),
            Pointing { sip: "127.0.0.2:5060".into(), stun: "127.0.0.3:3478".into() }
        );
        assert!(YealinkFile::parse(&YEALINK[..YEALINK.len() - 3]).is_err(), "cut short");
        assert!(YealinkFile::parse(&YEALINK[1..]).is_err(), "no version line");
        let twice = format!("{YEALINK}static.sip.nat_stun.port = 3479\n");
        assert!(YealinkFile::parse(&twice).is_err(), "a key twice");
        assert!(YealinkFile::parse(&format!("{YEALINK}garbage\n")).is_err());
    }

    const SPA: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- x -->\n<flat-profile>\n  \
                       <Proxy_1_ ua=\"na\">127.0.0.2:5060</Proxy_1_>\n  \
                       <Display_Name_1_ ua=\"na\">Lobby &amp; Co &lt;main&gt;</Display_Name_1_>\n  \
                       <Empty ua=\"na\"/>\n  <STUN_Server ua=\"na\">127.0.0.3:3478</STUN_Server>\n\
                       </flat-profile>\n";

    #[test]
    fn spa_profiles_are_parsed_strictly() {
        let file = SpaFile::parse(SPA).unwrap();
        assert_eq!(file.get("Display_Name_1_").unwrap(), "Lobby & Co <main>");
        assert_eq!(file.get("Empty").unwrap(), "");
        assert_eq!(
            file.pointing().unwrap(),
            Pointing { sip: "127.0.0.2:5060".into(), stun: "127.0.0.3:3478".into() }
        );
        assert!(SpaFile::parse(&SPA[..SPA.len() - 5]).is_err(), "cut short");
        assert!(SpaFile::parse(&SPA.replace(" ua=\"na\">127.0.0.2", ">127.0.0.2")).is_err(), "no ua");
        assert!(SpaFile::parse(&format!("{SPA}<flat-profile>")).is_err(), "two profiles");
    }

    #[test]
    fn profile_rules_are_read_as_the_phone_reads_them() {
        let plain = ProfileRule::parse("http://p:8080/prov/linksys/spa$MA.xml").unwrap();
        assert_eq!((plain.uid, plain.pwd), (None, None));
        let with = ProfileRule::parse("[--uid 0015651234ab --pwd s3cr!t]http://p/spa$MA.xml").unwrap();
        assert_eq!(with.uid.as_deref(), Some("0015651234ab"));
        assert_eq!(with.pwd.as_deref(), Some("s3cr!t"));
        assert_eq!(with.url, "http://p/spa$MA.xml");
        for bad in
            ["[--uid a --pwd b", "[--key x]http://p/", "[--pwd]http://p/", "[--uid a --uid b]http://p/", "[]"]
        {
            assert!(ProfileRule::parse(bad).is_err(), "{bad}");
        }
    }

    /// The files switchback renders, parsed back here by code that shares nothing with
    /// the templates: credentials appear only for a phone that has a provisioning password.
    #[test]
    fn rendered_files_carry_provisioning_credentials_only_when_the_phone_has_them() {
        use std::time::Duration;

        use secrecy::SecretString;
        use switchback_core::config::Transport;
        use switchback_core::Role;
        use switchback_provisioning::{
            ActiveSites, Generation, Mac, Phone, RenderSettings, SipSite, StunSite, Vendor,
        };

        let sites = ActiveSites {
            sip: SipSite {
                site: "chicago".into(),
                role: Role::Primary,
                host: "127.0.0.2".into(),
                port: 5060,
                transport: Transport::Udp,
            },
            stun: StunSite {
                site: "chicago".into(),
                role: Role::Primary,
                host: "127.0.0.3".into(),
                port: 3478,
            },
        };
        let settings = RenderSettings {
            public_url: "http://prov.test:8080".into(),
            poll_interval: Duration::from_secs(60),
        };
        let phone = |last: u8, vendor, prov: Option<&str>| Phone {
            mac: Mac::new([0x00, 0x15, 0x65, 0x12, 0x34, last]),
            vendor,
            model: "T46S".into(),
            display_name: String::new(),
            user_id: "1001".into(),
            auth_id: String::new(),
            password: SecretString::from("sip-pw"),
            prov_password: prov.map(SecretString::from),
        };
        let phones = [
            phone(0xa1, Vendor::Yealink, Some("Yk-4_9q!")),
            phone(0xa2, Vendor::Yealink, None),
            phone(0xa3, Vendor::Linksys, Some("Sp-4_9q!")),
            phone(0xa4, Vendor::Linksys, None),
        ];
        let generation = Generation::render(1, &sites, &settings, &phones).unwrap();
        let yealink = |name| {
            let file = generation.yealink_file(name).unwrap();
            YealinkFile::parse(std::str::from_utf8(file.bytes()).unwrap()).unwrap()
        };
        let spa = |name| {
            let file = generation.linksys_file(name).unwrap();
            SpaFile::parse(std::str::from_utf8(file.bytes()).unwrap()).unwrap().profile_rule().unwrap()
        };

        let with = yealink("0015651234a1.cfg");
        assert_eq!(with.provisioning_credentials().unwrap(), Some(("0015651234a1", "Yk-4_9q!")));
        assert_eq!(
            with.get("static.auto_provision.server.url").unwrap(),
            "http://prov.test:8080/prov/yealink/"
        );
        assert_eq!(yealink("0015651234a2.cfg").provisioning_credentials().unwrap(), None);

        let rule = spa("spa0015651234a3.xml");
        assert_eq!((rule.uid.as_deref(), rule.pwd.as_deref()), (Some("0015651234a3"), Some("Sp-4_9q!")));
        assert_eq!(rule.url, "http://prov.test:8080/prov/linksys/spa$MA.xml");
        let rule = spa("spa0015651234a4.xml");
        assert_eq!((rule.uid, rule.pwd), (None, None));
        assert_eq!(rule.url, "http://prov.test:8080/prov/linksys/spa$MA.xml");
    }
}
