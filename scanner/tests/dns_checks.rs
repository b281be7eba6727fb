//! The DNS checks against a real DNS server: nsd (Debian package `nsd`) started per test on a
//! loopback port, serving campus.test, its reverse zones and the test blocklist dnsbl.test
//! (testkit/fixtures/dns/zones/). Only loopback is ever contacted.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use relayguard_core::{Direction, FindingKind, Severity};
use relayguard_scanner::dns::{
    AxfrOptions, Dns, DnsChecks, DnsConfig, DnsError, SerialState, TargetSource,
};
use relayguard_testkit::nsd::Nsd;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

fn dns_for(addr: SocketAddr) -> Dns {
    let config = DnsConfig {
        timeout: Duration::from_secs(2),
        attempts: 1,
        ..DnsConfig::with_servers(vec![addr])
    };
    Dns::new(&config).expect("resolver")
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn kinds(checks: &DnsChecks) -> Vec<FindingKind> {
    checks.findings.iter().map(|f| f.kind).collect()
}

#[tokio::test]
async fn lookups_against_nsd_and_errors_map_to_clear_results() {
    let nsd = Nsd::start().await;
    let dns = dns_for(nsd.addr);

    assert_eq!(dns.ipv4("mx.campus.test").await, Ok(vec![ip("127.0.0.10")]));
    assert_eq!(
        dns.ptr(ip("192.0.2.10")).await,
        Ok(vec!["mail.campus.test".into()])
    );
    assert_eq!(
        dns.mx("campus.test.").await.unwrap(),
        vec![
            (10, "mx.campus.test".into()),
            (20, "mx2.campus.test".into()),
            (30, "mx6.campus.test".into())
        ]
    );
    assert_eq!(dns.soa_serial("campus.test").await, Ok(2026112201));
    // NXDOMAIN and NODATA are both "not found".
    assert_eq!(
        dns.ipv4("nosuch.campus.test").await,
        Err(DnsError::NotFound)
    );
    assert_eq!(dns.ipv6("www.campus.test").await, Err(DnsError::NotFound));
    // A secondary zone nsd never loaded answers SERVFAIL.
    assert_eq!(dns.ipv4("x.servfail.test").await, Err(DnsError::ServFail));
    // A zone nsd does not serve is REFUSED: a clear "other" error, not a panic.
    match dns.ipv4("not-served.example").await {
        Err(DnsError::Other(msg)) => assert!(msg.contains("REFUSED"), "{msg}"),
        other => panic!(
            "expected Other for a refused query, got {other:?}\n{}",
            nsd.logs()
        ),
    }
    assert!(matches!(
        dns.ipv4("bad..name").await,
        Err(DnsError::Other(_))
    ));
}

#[tokio::test]
async fn a_silent_server_times_out_and_checks_stay_inconclusive() {
    // A UDP socket that never answers, and a TCP listener that accepts and says nothing.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = udp.local_addr().unwrap();
    let _tcp = std::net::TcpListener::bind(addr).ok();
    let config = DnsConfig {
        timeout: Duration::from_millis(300),
        attempts: 1,
        ..DnsConfig::with_servers(vec![addr])
    };
    let dns = Dns::new(&config).unwrap();
    let started = std::time::Instant::now();
    assert_eq!(dns.ipv4("www.campus.test").await, Err(DnsError::Timeout));
    assert!(started.elapsed() < Duration::from_secs(10));

    let rev = dns.reverse_checks(ip("192.0.2.10")).await;
    assert_eq!(rev.ptr, None);
    assert!(rev.checks.findings.is_empty(), "{rev:?}");
    assert!(rev.checks.inconclusive[0].contains("timed out"), "{rev:?}");

    let bl = dns
        .dnsbl_checks(ip("127.0.0.2"), &["dnsbl.test".into()])
        .await;
    assert!(bl.findings.is_empty(), "a timeout is not a listing: {bl:?}");
    assert_eq!(bl.inconclusive.len(), 1);
}

#[tokio::test]
async fn reverse_checks_find_missing_unconfirmed_and_generic_ptrs() {
    let nsd = Nsd::start().await;
    let dns = dns_for(nsd.addr);

    // A proper mail server: PTR, forward-confirmed, not generic.
    let mx = dns.reverse_checks(ip("192.0.2.10")).await;
    assert_eq!(mx.ptr.as_deref(), Some("mail.campus.test"));
    assert!(mx.checks.findings.is_empty(), "{mx:?}");
    assert!(mx.checks.inconclusive.is_empty(), "{mx:?}");

    // No PTR at all.
    let none = dns.reverse_checks(ip("192.0.2.50")).await;
    assert_eq!(none.ptr, None);
    assert_eq!(kinds(&none.checks), vec![FindingKind::NoPtr]);
    assert_eq!(none.checks.findings[0].severity, Severity::Low);

    // PTR → elsewhere.campus.test, which resolves to 192.0.2.31.
    let unconfirmed = dns.reverse_checks(ip("192.0.2.30")).await;
    assert_eq!(unconfirmed.ptr.as_deref(), Some("elsewhere.campus.test"));
    assert_eq!(
        kinds(&unconfirmed.checks),
        vec![FindingKind::PtrNotConfirmed]
    );
    let f = &unconfirmed.checks.findings[0];
    let texts: Vec<&str> = f
        .evidence
        .transcript
        .iter()
        .map(|l| l.text.as_str())
        .collect();
    assert_eq!(
        texts,
        vec![
            "PTR 30.2.0.192.in-addr.arpa. -> elsewhere.campus.test.",
            "A/AAAA elsewhere.campus.test. -> 192.0.2.31",
        ]
    );
    assert!(
        f.evidence
            .transcript
            .iter()
            .all(|l| l.dir == Direction::Note && l.session == 0)
    );

    // Generic names: confirmed, but S25R receivers would refuse them.
    let octets = dns.reverse_checks(ip("192.0.2.21")).await;
    assert_eq!(kinds(&octets.checks), vec![FindingKind::GenericPtr]);
    assert!(
        octets.checks.findings[0].summary.contains("ip-octets"),
        "{octets:?}"
    );
    let dhcp = dns.reverse_checks(ip("192.0.2.22")).await;
    assert_eq!(kinds(&dhcp.checks), vec![FindingKind::GenericPtr]);
    assert!(dhcp.checks.findings[0].summary.contains("dynamic-keyword"));

    // IPv6: nibble names in ip6.arpa, confirmed by AAAA.
    let no_v6_ptr = dns.reverse_checks(ip("fd00::50")).await;
    assert_eq!(kinds(&no_v6_ptr.checks), vec![FindingKind::NoPtr]);
    let ula = dns.reverse_checks(ip("fd00::25")).await;
    assert_eq!(ula.ptr.as_deref(), Some("v6mail.campus.test"));
    assert!(ula.checks.findings.is_empty(), "{ula:?}");
}

#[tokio::test]
async fn dnsbl_listings_come_with_zone_code_and_reason() {
    let nsd = Nsd::start().await;
    let dns = dns_for(nsd.addr);
    let zones = vec!["dnsbl.test".to_string(), "servfail.test.".to_string()];

    // RFC 5782 test point.
    let test_point = dns.dnsbl_checks(ip("127.0.0.2"), &zones).await;
    assert_eq!(kinds(&test_point), vec![FindingKind::DnsblListed]);
    let f = &test_point.findings[0];
    assert_eq!(f.severity, Severity::High);
    assert!(f.summary.contains("dnsbl.test"), "{}", f.summary);
    assert!(f.summary.contains("127.0.0.2"), "{}", f.summary);
    assert!(f.summary.contains("RFC 5782 test point"), "{}", f.summary);
    assert_eq!(
        f.evidence.transcript[0].text,
        "A 2.0.0.127.dnsbl.test. -> 127.0.0.2"
    );
    // The blocklist that fails is a note, never a listing.
    assert_eq!(test_point.inconclusive.len(), 1);
    assert!(
        test_point.inconclusive[0].contains("SERVFAIL"),
        "{test_point:?}"
    );

    // An abused campus host, with its own code.
    let abused = dns.dnsbl_checks(ip("127.0.0.11"), &zones[..1]).await;
    assert_eq!(kinds(&abused), vec![FindingKind::DnsblListed]);
    assert!(abused.findings[0].summary.contains("127.0.0.4"));
    assert!(abused.findings[0].summary.contains("sent spam to a trap"));

    // Not listed: NXDOMAIN, nothing to report.
    let clean = dns.dnsbl_checks(ip("127.0.0.10"), &zones[..1]).await;
    assert_eq!(clean, DnsChecks::default());

    // IPv6 nibbles.
    let v6 = dns.dnsbl_checks(ip("::1"), &zones[..1]).await;
    assert_eq!(kinds(&v6), vec![FindingKind::DnsblListed]);
    assert!(v6.findings[0].summary.contains("127.0.0.3"));

    // No zones configured: no queries, no findings.
    assert_eq!(
        dns.dnsbl_checks(ip("127.0.0.2"), &[]).await,
        DnsChecks::default()
    );
}

/// An SMTP greeter on 127.0.0.x:port, for the MX reachability probe.
async fn smtp_greeter(addr: SocketAddr) -> tokio::task::JoinHandle<()> {
    let listener = TcpListener::bind(addr).await.expect("bind greeter");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.write_all(b"220 mx.campus.test ESMTP test\r\n").await;
        }
    })
}

/// The probe the CLI will replace with the scanner's connect: true when a 220 greeting comes.
async fn smtp_answers(addr: SocketAddr) -> bool {
    let attempt = async {
        let stream = TcpStream::connect(addr).await.ok()?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).await.ok()?;
        Some(line.starts_with("220"))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), attempt).await,
        Ok(Some(true))
    )
}

#[tokio::test]
async fn mx_checks_find_unregistered_silent_and_ipv6_unreachable_mx() {
    let nsd = Nsd::start().await;
    let dns = dns_for(nsd.addr);
    // A port free on 127.0.0.10 and 127.0.0.12 (nothing listens on 127.0.0.11 or ::1 there).
    let probe_port = {
        let l = std::net::TcpListener::bind("127.0.0.10:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let g1 = smtp_greeter(SocketAddr::new(ip("127.0.0.10"), probe_port)).await;
    let g2 = smtp_greeter(SocketAddr::new(ip("127.0.0.12"), probe_port)).await;

    let registered: BTreeSet<IpAddr> = [ip("127.0.0.10"), ip("127.0.0.12"), ip("::1")].into();
    let is_registered = |a: IpAddr| registered.contains(&a);
    let checks = dns
        .mx_checks("campus.test", probe_port, &is_registered, smtp_answers)
        .await;
    g1.abort();
    g2.abort();

    let mut got: Vec<(FindingKind, String)> = checks
        .findings
        .iter()
        .map(|f| {
            (
                f.kind,
                f.summary.split(' ').nth(1).unwrap_or("").to_string(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            (FindingKind::MxUnregistered, "mx2.campus.test".into()),
            (FindingKind::MxNotAnswering, "mx2.campus.test".into()),
            (FindingKind::MxIpv6Unreachable, "mx6.campus.test".into()),
        ],
        "{checks:#?}"
    );
    assert!(checks.inconclusive.is_empty(), "{checks:?}");
    let v6 = checks
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::MxIpv6Unreachable)
        .unwrap();
    assert!(v6.summary.contains("::1"));
    let probes: Vec<&str> = v6
        .evidence
        .transcript
        .iter()
        .map(|l| l.text.as_str())
        .filter(|t| t.starts_with("SMTP probe"))
        .collect();
    assert_eq!(
        probes,
        vec![
            format!("SMTP probe 127.0.0.12:{probe_port} -> answered"),
            format!("SMTP probe [::1]:{probe_port} -> no answer"),
        ]
    );

    // A zone without MX gives nothing; a failing zone is inconclusive.
    let no_mx = dns
        .mx_checks("dnsbl.test", probe_port, &is_registered, smtp_answers)
        .await;
    assert_eq!(no_mx, DnsChecks::default());
    let broken = dns
        .mx_checks("servfail.test", probe_port, &is_registered, smtp_answers)
        .await;
    assert!(broken.findings.is_empty());
    assert_eq!(broken.inconclusive.len(), 1);
}

#[tokio::test]
async fn registrations_are_checked_against_forward_and_reverse_dns() {
    let nsd = Nsd::start().await;
    let dns = dns_for(nsd.addr);

    let ok = dns
        .registration_dns_check("mail.campus.test.", ip("192.0.2.10"))
        .await;
    assert_eq!(ok, DnsChecks::default());

    let wrong_addr = dns
        .registration_dns_check("printer.campus.test", ip("192.0.2.61"))
        .await;
    assert_eq!(
        kinds(&wrong_addr),
        vec![FindingKind::RegistrationDnsMismatch]
    );
    assert!(wrong_addr.findings[0].summary.contains("192.0.2.60"));

    let missing = dns
        .registration_dns_check("nosuch.campus.test", ip("192.0.2.70"))
        .await;
    assert_eq!(kinds(&missing), vec![FindingKind::RegistrationDnsMismatch]);
    assert!(missing.findings[0].summary.contains("no A/AAAA"));

    // Forward fine, but the address's PTR names another host.
    let other_ptr = dns
        .registration_dns_check("www.campus.test", ip("192.0.2.10"))
        .await;
    assert_eq!(
        kinds(&other_ptr),
        vec![FindingKind::RegistrationDnsMismatch]
    );
    assert!(
        other_ptr.findings[0]
            .summary
            .contains("PTR is mail.campus.test")
    );
}

#[tokio::test]
async fn targets_come_from_mx_apex_and_zone_transfer_with_remembered_serials() {
    let nsd = Nsd::start().await;
    let dns = dns_for(nsd.addr);

    // Without a transfer: MX targets, then the apex.
    let plain = dns.targets_from_zone("campus.test", None, None).await;
    let pairs: Vec<(IpAddr, &str, TargetSource)> = plain
        .targets
        .iter()
        .map(|t| (t.ip, t.name.as_str(), t.source))
        .collect();
    assert_eq!(
        pairs,
        vec![
            (ip("127.0.0.10"), "mx.campus.test", TargetSource::Mx),
            (ip("127.0.0.11"), "mx2.campus.test", TargetSource::Mx),
            (ip("127.0.0.12"), "mx6.campus.test", TargetSource::Mx),
            (ip("::1"), "mx6.campus.test", TargetSource::Mx),
            (ip("127.0.0.10"), "campus.test", TargetSource::Host),
        ]
    );
    assert!(!plain.transferred);

    // With AXFR from nsd and a state file.
    let state_dir =
        std::env::temp_dir().join(format!("relayguard-dns-state-{}", std::process::id()));
    std::fs::create_dir_all(&state_dir).unwrap();
    let state_path = state_dir.join("serials.json");
    let _ = std::fs::remove_file(&state_path);
    let options = AxfrOptions {
        servers: vec![nsd.addr],
        timeout: Duration::from_secs(5),
        ..AxfrOptions::default()
    };
    let mut state = SerialState::load(&state_path).unwrap();
    let first = dns
        .targets_from_zone("campus.test", Some(&options), Some(&mut state))
        .await;
    assert!(first.transferred, "{first:?}\n{}", nsd.logs());
    assert_eq!(first.serial, Some(2026112201));
    let names: BTreeSet<&str> = first.targets.iter().map(|t| t.name.as_str()).collect();
    for expected in [
        "host-192-0-2-21.campus.test",
        "printer.campus.test",
        "v6mail.campus.test",
        "ns.campus.test",
    ] {
        assert!(
            names.contains(expected),
            "{expected} missing from {names:?}"
        );
    }
    assert!(
        first
            .targets
            .iter()
            .any(|t| t.ip == ip("fd00::25") && t.source == TargetSource::Axfr)
    );
    state.save().unwrap();
    assert_eq!(state.serial("campus.test."), Some(2026112201));

    // Same serial next time: no transfer, the remembered targets.
    let mut reloaded = SerialState::load(&state_path).unwrap();
    let second = dns
        .targets_from_zone("campus.test", Some(&options), Some(&mut reloaded))
        .await;
    assert!(!second.transferred);
    assert_eq!(second.targets, first.targets);

    // A zone whose server refuses transfers: noted, and the MX/apex targets still come.
    let refused = dns
        .targets_from_zone("dnsbl.test", Some(&options), None)
        .await;
    assert!(!refused.transferred);
    assert!(
        refused
            .inconclusive
            .iter()
            .any(|l| l.starts_with("AXFR dnsbl.test.") && l.contains("REFUSED")),
        "{refused:?}"
    );
    let _ = std::fs::remove_dir_all(&state_dir);
}
