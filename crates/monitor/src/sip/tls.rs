//! The TLS layer of OPTIONS over TLS: a handshake bounded by the check's deadline.
//!
//! The probe asks "does the softswitch answer SIP", not "is its certificate one we
//! trust": softswitches often run on a private CA or a self-signed certificate, and the
//! probe sends nothing secret. So the chain is not checked, but the handshake signature
//! is, so a peer must still hold the key of the certificate it presents.

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::probe::{io_failure, Failure};

/// Runs the TLS handshake over `stream`, naming `host` in SNI when it is a DNS name.
pub(super) async fn handshake(
    stream: TcpStream,
    host: &str,
    deadline: Instant,
) -> Result<TlsStream<TcpStream>, Failure> {
    let name = ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']').to_owned())
        .map_err(|_| Failure::Error(format!("tls: {host} is not a server name")))?;
    match timeout_at(deadline, connector().connect(name, stream)).await {
        Err(_) => Err(Failure::Timeout),
        Ok(Err(err)) => Err(tls_failure(&err)),
        Ok(Ok(stream)) => Ok(stream),
    }
}

/// A failed handshake: the peer hung up or said no in TLS terms.
fn tls_failure(err: &std::io::Error) -> Failure {
    match err.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        Some(tls) => Failure::Error(format!("tls: {tls}")),
        None if err.kind() == std::io::ErrorKind::UnexpectedEof => {
            Failure::Error("tls: connection closed during handshake".to_owned())
        }
        None => io_failure(err),
    }
}

/// One connector for the process: building the config loads the cipher suites.
fn connector() -> TlsConnector {
    static CONNECTOR: OnceLock<TlsConnector> = OnceLock::new();
    CONNECTOR
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let verifier = Arc::new(AnyCertificate(provider.clone()));
            let config = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                // Infallible: ring's default provider supports the default versions.
                .unwrap_or_else(|_| unreachable!("ring supports TLS 1.2 and 1.3"))
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth();
            TlsConnector::from(Arc::new(config))
        })
        .clone()
}

/// Accepts any certificate chain, but checks the handshake signatures with it.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
