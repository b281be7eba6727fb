//! TLS for STARTTLS and implicit TLS: handshake, and capture of what the server presented.
//!
//! An auditor must complete the handshake even when the certificate is bad (a self-signed
//! certificate is a finding, not a reason to stop), yet still know whether it would validate.
//! [`RecordingVerifier`] does both: it asks a WebPKI verifier over the system trust store (what
//! rustls-platform-verifier uses on Linux) for its verdict, records it, and lets the handshake go
//! on. Handshake signatures are still checked by the real verifier. The platform verifier itself
//! is not used: it logs every certificate it rejects at error level, and a bad certificate on a
//! swept host is a finding, not a diagnostic for stderr.
//!
//! A handshake never outlives its deadline (the command timeout, or the host deadline when that
//! comes first): a server that stalls after the ClientHello, or announces a large record and
//! never sends it, costs one command timeout.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use relayguard_core::scan::{CertificateInfo, TlsInfo};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// Shared TLS set-up for a sweep: the crypto provider and the trust store's verifier.
#[derive(Clone)]
pub struct TlsSetup {
    provider: Arc<CryptoProvider>,
    verifier: Arc<dyn ServerCertVerifier>,
}

impl std::fmt::Debug for TlsSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSetup").finish_non_exhaustive()
    }
}

impl TlsSetup {
    /// Uses the system trust store plus `extra_roots` (e.g. a campus CA).
    ///
    /// System certificates that cannot be parsed are skipped with a warning; a bad extra root is
    /// an error, and so is ending up with no trusted root at all.
    pub fn new(extra_roots: Vec<CertificateDer<'static>>) -> Result<TlsSetup, rustls::Error> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = RootCertStore::empty();
        for cert in extra_roots {
            roots.add(cert)?;
        }
        let system = rustls_native_certs::load_native_certs();
        let (_, ignored) = roots.add_parsable_certificates(system.certs);
        if ignored > 0 {
            tracing::warn!(
                "{ignored} system CA certificates could not be parsed and are not trusted"
            );
        }
        for error in system.errors {
            tracing::warn!("reading the system CA certificates: {error}");
        }
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(format!("no trusted CA certificates: {e}")))?;
        Ok(TlsSetup { provider, verifier })
    }

    /// Runs a TLS handshake over the handed-over stream, checking the certificate against `name`;
    /// gives up at the handover's deadline.
    ///
    /// Always returns what was learned; the stream only when the handshake completed.
    pub async fn handshake(
        &self,
        handover: Handover,
        name: &str,
    ) -> (Option<TlsStream<TcpStream>>, TlsInfo) {
        let Handover {
            tcp,
            deadline,
            late,
        } = handover;
        let recorder = Arc::new(RecordingVerifier {
            inner: self.verifier.clone(),
            outcome: Mutex::new(None),
        });
        let mut info = TlsInfo {
            established: false,
            version: None,
            cipher: None,
            checked_name: name.to_string(),
            certificate_valid: false,
            error: None,
            chain: Vec::new(),
        };
        let config = match ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
        {
            Ok(builder) => builder
                .dangerous()
                .with_custom_certificate_verifier(recorder.clone())
                .with_no_client_auth(),
            Err(e) => {
                info.error = Some(e.to_string());
                return (None, info);
            }
        };
        let server_name = match name.parse::<IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => match ServerName::try_from(name.to_string()) {
                Ok(n) => n,
                Err(e) => {
                    info.error = Some(format!("invalid server name {name:?}: {e}"));
                    return (None, info);
                }
            },
        };
        let connector = TlsConnector::from(Arc::new(config));
        let result = match timeout_at(deadline, connector.connect(server_name, tcp)).await {
            Ok(result) => result,
            Err(_) => {
                info.error = Some(format!("TLS handshake cut off: {late}"));
                return (None, info);
            }
        };
        let outcome = recorder.outcome.lock().map(|o| o.clone()).unwrap_or(None);
        match result {
            Ok(stream) => {
                let (_, conn) = stream.get_ref();
                info.established = true;
                info.version = conn.protocol_version().map(|v| format!("{v:?}"));
                info.cipher = conn
                    .negotiated_cipher_suite()
                    .map(|c| format!("{:?}", c.suite()));
                info.chain = conn
                    .peer_certificates()
                    .unwrap_or_default()
                    .iter()
                    .map(describe_certificate)
                    .collect();
                match outcome {
                    Some(Ok(())) => info.certificate_valid = true,
                    Some(Err(e)) => info.error = Some(e),
                    None => info.error = Some("certificate was not checked".into()),
                }
                (Some(stream), info)
            }
            Err(e) => {
                info.error = Some(e.to_string());
                (None, info)
            }
        }
    }
}

/// A plain TCP stream handed over for a TLS handshake, with the instant the handshake must be
/// over by. Taken out of a [`Connection`](super::Connection), it carries the connection's
/// command timeout (or its host deadline, when that comes first), so no caller can forget it.
#[derive(Debug)]
pub struct Handover {
    tcp: TcpStream,
    deadline: Instant,
    late: String,
}

impl Handover {
    /// Hands `tcp` over for a handshake that must end by `deadline`; `late` says which limit
    /// that is (e.g. "no reply within 10s"), for the error.
    pub fn new(tcp: TcpStream, deadline: Instant, late: impl Into<String>) -> Handover {
        Handover {
            tcp,
            deadline,
            late: late.into(),
        }
    }
}

/// A verifier that records the real verifier's verdict on the chain and then accepts it.
#[derive(Debug)]
struct RecordingVerifier {
    inner: Arc<dyn ServerCertVerifier>,
    outcome: Mutex<Option<Result<(), String>>>,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map(|_| ())
            .map_err(|e| e.to_string());
        if let Ok(mut slot) = self.outcome.lock() {
            *slot = Some(verdict);
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Extracts the human-relevant fields of a DER certificate.
fn describe_certificate(der: &CertificateDer<'_>) -> CertificateInfo {
    let sha256 = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der.as_ref())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    match X509Certificate::from_der(der.as_ref()) {
        Ok((_, cert)) => {
            let rfc3339 = |t: x509_parser::time::ASN1Time| {
                t.to_datetime()
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_else(|_| t.to_string())
            };
            let subject_alt_names = match cert.subject_alternative_name() {
                Ok(Some(ext)) => ext
                    .value
                    .general_names
                    .iter()
                    .filter_map(|n| match n {
                        GeneralName::DNSName(d) => Some(d.to_string()),
                        GeneralName::IPAddress(b) => ip_from_bytes(b).map(|ip| ip.to_string()),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            CertificateInfo {
                subject: cert.subject().to_string(),
                issuer: cert.issuer().to_string(),
                not_before: rfc3339(cert.validity().not_before),
                not_after: rfc3339(cert.validity().not_after),
                subject_alt_names,
                sha256,
            }
        }
        Err(e) => CertificateInfo {
            subject: format!("(unparseable certificate: {e})"),
            issuer: String::new(),
            not_before: String::new(),
            not_after: String::new(),
            subject_alt_names: Vec::new(),
            sha256,
        },
    }
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

/// Reads every certificate from PEM files (for `--tls-ca`).
pub fn load_pem_certificates(
    paths: &[std::path::PathBuf],
) -> Result<Vec<CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let mut out = Vec::new();
    for path in paths {
        let before = out.len();
        for cert in CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        {
            out.push(cert.map_err(|e| format!("bad certificate in {}: {e}", path.display()))?);
        }
        if out.len() == before {
            return Err(format!("{} holds no PEM certificate", path.display()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A server that reads the ClientHello, sends `answer`, then stays silent with the
    /// connection open.
    async fn stalling_server(answer: &'static [u8]) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut hello = [0u8; 4096];
            let _ = s.read(&mut hello).await;
            let _ = s.write_all(answer).await;
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        addr
    }

    async fn handshake_with(addr: std::net::SocketAddr) -> (Duration, TlsInfo) {
        let setup = TlsSetup::new(Vec::new()).unwrap();
        let tcp = TcpStream::connect(addr).await.unwrap();
        let started = Instant::now();
        let handover = Handover::new(tcp, started + Duration::from_millis(400), "no reply");
        let (stream, info) = setup.handshake(handover, "stall.campus.test").await;
        assert!(stream.is_none());
        (started.elapsed(), info)
    }

    #[tokio::test]
    async fn a_server_silent_after_the_client_hello_is_cut_off_at_the_deadline() {
        let (took, info) = handshake_with(stalling_server(b"").await).await;
        assert!(took < Duration::from_millis(1400), "took {took:?}");
        assert!(!info.established);
        let error = info.error.unwrap();
        assert!(error.contains("cut off"), "{error}");
    }

    #[tokio::test]
    async fn a_record_header_announcing_16_kib_then_silence_is_cut_off_at_the_deadline() {
        // A handshake record (type 22, TLS 1.2) of 16384 bytes, of which none follow.
        let (took, info) = handshake_with(stalling_server(b"\x16\x03\x03\x40\x00").await).await;
        assert!(took < Duration::from_millis(1400), "took {took:?}");
        let error = info.error.unwrap();
        assert!(error.contains("cut off"), "{error}");
    }
}
