//! Implicit TLS (port 465) and certificate validation against a given CA, with a scripted SMTP
//! server behind a real rustls server. STARTTLS against real Postfix with a self-signed
//! certificate is covered in the workspace's tests/postfix_sweep.rs.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use relayguard_core::FindingKind;
use relayguard_scanner::smtp::{SessionConfig, TlsSetup};
use relayguard_scanner::{AuditConfig, Pacer, audit};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

const NAME: &str = "smtps.campus.test";

/// A CA and a leaf certificate for [`NAME`] signed by it.
fn pki() -> (
    CertificateDer<'static>,
    Vec<CertificateDer<'static>>,
    PrivateKeyDer<'static>,
) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec![NAME.to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    (
        ca.der().clone(),
        vec![leaf.der().clone(), ca.der().clone()],
        key,
    )
}

/// An SMTPS server on `ip:465` that refuses relaying and offers AUTH PLAIN (inside TLS).
async fn smtps_server(ip: IpAddr) -> (SocketAddr, CertificateDer<'static>) {
    let (ca, chain, key) = pki();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind(SocketAddr::new(ip, 465))
        .await
        .expect("bind port 465 on a loopback address (tests run as root)");
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let (read, mut write) = tokio::io::split(tls);
                let mut lines = BufReader::new(read).lines();
                let _ = write
                    .write_all(format!("220 {NAME} ESMTP OpenSMTPD\r\n").as_bytes())
                    .await;
                while let Ok(Some(line)) = lines.next_line().await {
                    let upper = line.to_ascii_uppercase();
                    let reply = if upper.starts_with("EHLO") {
                        format!("250-{NAME} Hello\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n")
                    } else if upper.starts_with("MAIL") || upper.starts_with("RSET") {
                        "250 2.0.0 Ok\r\n".into()
                    } else if upper.starts_with("RCPT") {
                        "550 Invalid recipient\r\n".into()
                    } else if upper.starts_with("QUIT") {
                        let _ = write.write_all(b"221 2.0.0 Bye\r\n").await;
                        return;
                    } else {
                        "502 5.5.1 Command not implemented\r\n".into()
                    };
                    if write.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                    let _ = write.flush().await;
                }
            });
        }
    });
    (addr, ca)
}

fn config(extra_roots: Vec<CertificateDer<'static>>) -> Arc<AuditConfig> {
    let base = relayguard_testkit::audit_config();
    Arc::new(AuditConfig {
        session: SessionConfig {
            tls: TlsSetup::new(extra_roots).unwrap(),
            ..base.session.clone()
        },
        command_timeout: Duration::from_secs(3),
        ..base
    })
}

#[tokio::test]
async fn implicit_tls_on_465_with_a_certificate_from_a_trusted_campus_ca() {
    let (addr, ca) = smtps_server("127.66.4.65".parse().unwrap()).await;
    let pacer = Arc::new(Pacer::new(None));

    // Trusted CA and the right name: valid, and AUTH inside TLS is no finding.
    let r = audit(
        addr.ip(),
        465,
        Some(NAME),
        config(vec![ca.clone()]),
        pacer.clone(),
    )
    .await;
    let smtp = r.smtp.as_ref().expect("SMTP over implicit TLS");
    let tls = smtp.tls.as_ref().unwrap();
    assert!(tls.established && tls.certificate_valid, "{tls:?}");
    assert_eq!(tls.checked_name, NAME);
    assert_eq!(tls.chain.len(), 2);
    assert_eq!(tls.chain[0].subject_alt_names, vec![NAME.to_string()]);
    assert!(tls.version.as_deref().unwrap().starts_with("TLSv1_"));
    assert_eq!(smtp.mta, "opensmtpd");
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    assert!(
        r.tests
            .iter()
            .all(|t| t.kind != relayguard_core::scan::TestKind::Relay
                || t.verdict == relayguard_core::scan::Verdict::Refused)
    );

    // The same server checked under another name: the chain is trusted, the name is not.
    let r = audit(
        addr.ip(),
        465,
        Some("other.campus.test"),
        config(vec![ca]),
        pacer.clone(),
    )
    .await;
    let tls = r.smtp.as_ref().unwrap().tls.as_ref().unwrap();
    assert!(tls.established && !tls.certificate_valid);
    assert!(
        tls.error.as_deref().unwrap().contains("not valid for name"),
        "{tls:?}"
    );
    let kinds: Vec<FindingKind> = r.findings.iter().map(|f| f.kind).collect();
    assert_eq!(kinds, vec![FindingKind::TlsCertificateInvalid]);

    // Without the campus CA the issuer is unknown.
    let r = audit(addr.ip(), 465, Some(NAME), config(Vec::new()), pacer).await;
    let tls = r.smtp.as_ref().unwrap().tls.as_ref().unwrap();
    assert!(!tls.certificate_valid);
    let error = tls.error.as_deref().unwrap().to_ascii_lowercase();
    assert!(
        error.contains("unknownissuer") || error.contains("unknown issuer"),
        "{tls:?}"
    );
}
