//! The HTTPS listener's TLS settings: the server certificate (re-read on SIGHUP) and,
//! with `provisioning.auth = "client_cert"`, the phones' device certificates.
//!
//! A phone's certificate chain is checked after the handshake, not during it: a
//! handshake that fails tells the server nothing it can count, while a completed one
//! with a look-alike certificate is a bad phone-file request that the scan guard counts
//! and the metrics show. The handshake still proves that the client holds the key
//! (rustls checks the CertificateVerify signature through the real verifier).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ServerSessionMemoryCache, WebPkiClientVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme};
use switchback_provisioning::Mac;

/// TLS sessions remembered for resumption: phones reconnect every poll.
const SESSION_CACHE: usize = 65_536;

/// Where the HTTPS listener's certificate, key and (optionally) phone CAs are.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// `client_cert`: the CAs that issue phones' device certificates.
    pub client_ca: Option<PathBuf>,
}

/// A TLS file that cannot be used; `key` is the config key that names it.
#[derive(Debug, thiserror::Error)]
#[error("config key `{key}`: {problem}")]
pub struct TlsError {
    pub key: &'static str,
    pub problem: String,
}

impl TlsError {
    fn new(key: &'static str, problem: impl Into<String>) -> Self {
        Self { key, problem: problem.into() }
    }
}

/// The live TLS settings, swapped whole when the files are re-read.
#[derive(Debug)]
pub struct Tls {
    files: TlsFiles,
    current: ArcSwap<Loaded>,
}

/// One reading of the files: the rustls config and the verifier for phone chains.
#[derive(Debug)]
pub struct Loaded {
    pub config: Arc<ServerConfig>,
    phones: Option<Arc<dyn ClientCertVerifier>>,
}

impl Tls {
    /// Reads every file; any problem names its config key.
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let loaded = Loaded::read(&files)?;
        Ok(Self { files, current: ArcSwap::from_pointee(loaded) })
    }

    /// Re-reads the files (SIGHUP). On error the settings in force stay as they are.
    pub fn reload(&self) -> Result<(), TlsError> {
        let loaded = Loaded::read(&self.files)?;
        self.current.store(Arc::new(loaded));
        Ok(())
    }

    pub fn current(&self) -> Arc<Loaded> {
        self.current.load_full()
    }
}

impl Loaded {
    fn read(files: &TlsFiles) -> Result<Self, TlsError> {
        let chain = read_certs("server.tls_cert", &files.cert)?;
        let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
            TlsError::new(
                "server.tls_key",
                format!("{}: no usable PEM private key ({e})", files.key.display()),
            )
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::new("server.tls_listen", e.to_string()))?;
        let phones = match &files.client_ca {
            Some(path) => Some(phone_verifier(path, provider)?),
            None => None,
        };
        let builder = match &phones {
            Some(verifier) => builder.with_client_cert_verifier(Arc::new(AfterHandshake(verifier.clone()))),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(chain, key).map_err(|e| {
            TlsError::new("server.tls_key", format!("{} does not fit tls_cert: {e}", files.key.display()))
        })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE);
        config.ticketer = rustls::crypto::ring::Ticketer::new()
            .map_err(|e| TlsError::new("server.tls_listen", format!("no session tickets: {e}")))?;
        Ok(Self { config: Arc::new(config), phones })
    }

    /// Who the client's certificate says it is, if it verifies against `client_ca`.
    pub fn identify(&self, chain: Option<&[CertificateDer<'_>]>) -> ClientIdentity {
        let (Some(verifier), Some((end_entity, intermediates))) =
            (&self.phones, chain.and_then(|c| c.split_first()))
        else {
            return ClientIdentity::None;
        };
        match verifier.verify_client_cert(end_entity, intermediates, UnixTime::now()) {
            Ok(_) => ClientIdentity::Verified { macs: macs_in_certificate(end_entity) },
            Err(err) => ClientIdentity::Rejected { why: err.to_string() },
        }
    }
}

/// What a connection's client certificate proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientIdentity {
    /// No certificate (or no `client_ca` configured).
    None,
    /// The chain verifies against `client_ca`; these MACs are in its CN or SANs.
    Verified { macs: Vec<Mac> },
    /// A certificate was presented but does not verify (another CA, expired, …).
    Rejected { why: String },
}

fn read_certs(key: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| TlsError::new(key, format!("cannot read {}: {e}", path.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::new(key, format!("{}: not a PEM certificate file ({e})", path.display())))?;
    if certs.is_empty() {
        return Err(TlsError::new(key, format!("{} holds no PEM certificate", path.display())));
    }
    Ok(certs)
}

fn phone_verifier(
    path: &Path,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    const KEY: &str = "provisioning.client_ca";
    let mut roots = RootCertStore::empty();
    for cert in read_certs(KEY, path)? {
        roots.add(cert).map_err(|e| {
            TlsError::new(KEY, format!("{}: not a usable CA certificate ({e})", path.display()))
        })?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsError::new(KEY, format!("{}: {e}", path.display())))
}

/// Asks for a client certificate (never requires one: the dashboard is served on the
/// same listener) and defers the chain check to [`Loaded::identify`]. Signatures are
/// checked by the real verifier, so the client must hold the certificate's key.
#[derive(Debug)]
struct AfterHandshake(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for AfterHandshake {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Every MAC written in the certificate's subject CN or its SANs.
pub fn macs_in_certificate(cert: &CertificateDer<'_>) -> Vec<Mac> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let Ok((_, parsed)) = X509Certificate::from_der(cert.as_ref()) else {
        return Vec::new();
    };
    let mut texts: Vec<String> =
        parsed.subject().iter_common_name().filter_map(|cn| cn.as_str().ok().map(str::to_owned)).collect();
    if let Ok(Some(san)) = parsed.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => {
                    texts.push((*s).to_owned())
                }
                GeneralName::OtherName(_, value) => texts.push(String::from_utf8_lossy(value).into_owned()),
                _ => {}
            }
        }
    }
    let mut macs: Vec<Mac> = texts.iter().flat_map(|t| macs_in_text(t)).collect();
    macs.sort_unstable();
    macs.dedup();
    macs
}

/// MACs in free text, read word by word (words are split at anything that is not a
/// letter or digit): a word of exactly 12 hex digits (`001565abcdef`), a word that ends
/// in 12 hex digits after a letter that is not one (`SEP001565ABCDEF`), six two-digit
/// hex words in a row (`00:15:65:ab:cd:ef`, `mac-00-15-65-ab-cd-ef`) or three four-digit
/// ones (`0015.65ab.cdef`). A longer row of such words is ambiguous and names nothing:
/// a certificate opens a phone's file only when it names that MAC without doubt.
pub fn macs_in_text(text: &str) -> Vec<Mac> {
    let words: Vec<&str> =
        text.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).collect();
    let is_hex = |w: &str| w.bytes().all(|b| b.is_ascii_hexdigit());
    let mut macs = Vec::new();
    for word in &words {
        if word.len() == 12 && is_hex(word) {
            macs.extend(Mac::parse(word).ok());
        } else if !is_hex(word) {
            let tail = word.len() - word.bytes().rev().take_while(u8::is_ascii_hexdigit).count();
            if word.len() - tail == 12 {
                macs.extend(Mac::parse(&word[tail..]).ok());
            }
        }
    }
    // Rows of equal-width hex words: exactly 6 of two digits, or 3 of four.
    for (width, count) in [(2, 6), (4, 3)] {
        let mut start = 0;
        while start < words.len() {
            let fits = |w: &&&str| w.len() == width && is_hex(w);
            let row = words[start..].iter().take_while(fits).count();
            if row == count {
                macs.extend(Mac::parse(&words[start..start + row].concat()).ok());
            }
            start += row.max(1);
        }
    }
    macs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(text: &str) -> Mac {
        Mac::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn macs_are_found_in_any_spelling() {
        let cases: &[(&str, &[&str])] = &[
            ("001565abcdef", &["001565abcdef"]),
            ("00:15:65:AB:CD:EF", &["001565abcdef"]),
            ("SEP001565ABCDEF", &["001565abcdef"]),
            ("yealink-00-15-65-ab-cd-ef.phones.example", &["001565abcdef"]),
            ("0015.65ab.cdef", &["001565abcdef"]),
            ("yealink-001565000002.example", &["001565000002"]),
            ("SEP001565000002.cafe", &["001565000002"]),
            ("device-001565000001", &["001565000001"]),
            ("mac-00-15-65-00-00-01", &["001565000001"]),
            ("phone-00-15-65-00-00-01.example", &["001565000001"]),
            ("ab-00-15-65-00-00-01", &[]),
            ("001565abcdef0", &[]),
            ("001565abcde", &[]),
            ("phone 001565abcdef and 001565000001", &["001565abcdef", "001565000001"]),
            ("", &[]),
        ];
        for (text, want) in cases {
            let want: Vec<Mac> = want.iter().map(|m| mac(m)).collect();
            assert_eq!(macs_in_text(text), want, "{text}");
        }
    }

    #[test]
    fn a_missing_or_garbage_file_names_its_key() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate").unwrap_or_else(|e| panic!("{e}"));
        let missing = dir.path().join("missing.pem");
        let files =
            |cert: &Path, key: &Path| TlsFiles { cert: cert.into(), key: key.into(), client_ca: None };
        let err = Tls::load(files(&missing, &missing)).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("server.tls_cert") && err.contains("missing.pem"), "{err}");
        let err = Tls::load(files(&garbage, &garbage)).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("server.tls_cert"), "{err}");
    }
}
