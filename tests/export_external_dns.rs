//! `relayguard export external-dns` against real nsd: a first nsd serves the internal zone, the
//! command transfers it and writes the external view, `nsd-checkzone` accepts every file, and a
//! second nsd serving the written zone answers with the MX each registration calls for; the SOA
//! serial moves when and only when the written content does.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use relayguard_scanner::dns::{Dns, DnsConfig, DnsError, soa_serial_tcp};
use relayguard_testkit::nsd::Nsd;

/// The internal zone; `{serial}` and `{inside_pref}` vary between runs.
const INTERNAL: &str = r#"$ORIGIN uni.test.
$TTL 3600
@        IN SOA ns.uni.test. hostmaster.uni.test. {serial} 3600 600 86400 300
@        IN NS  ns.uni.test.
ns       IN A   192.0.2.53
@        IN MX  10 mx.uni.test.
@        IN TXT "v=spf1 mx -all" "quote \" inside"
@        IN CAA 0 issue "letsencrypt.org"
mx       IN A   192.0.2.25
direct   IN A   192.0.2.26
direct   IN MX  10 direct.uni.test.
www      IN CNAME direct.uni.test.
_submission._tcp IN SRV 0 1 587 direct.uni.test.
gw       IN A   192.0.2.30
gw       IN MX  10 gw.uni.test.
dept     IN MX  5 gw.uni.test.
bare     IN A   192.0.2.31
inside   IN A   192.0.2.40
inside   IN MX  {inside_pref} inside.uni.test.
lab      IN MX  10 inside.uni.test.
"#;

fn internal(serial: u32, inside_pref: u16) -> String {
    INTERNAL
        .replace("{serial}", &serial.to_string())
        .replace("{inside_pref}", &inside_pref.to_string())
}

/// Runs `relayguard --database URL ARGS…`: Ok(stdout) or Err(stderr).
fn relayguard(url: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_relayguard"))
        .arg("--database")
        .arg(url)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run relayguard: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn add(url: &str, address: &str, hostname: &str, role: &str) {
    relayguard(
        url,
        &[
            "hosts",
            "add",
            address,
            "--hostname",
            hostname,
            "--role",
            role,
            "--admin-name",
            "Sato",
            "--admin-email",
            "sato@uni.test",
        ],
    )
    .unwrap();
}

fn export(url: &str, nsd: &Nsd, out: &Path) -> Result<String, String> {
    relayguard(
        url,
        &[
            "export",
            "external-dns",
            "--zone",
            "uni.test",
            "--gateway",
            "mx1.gw.example:10",
            "--gateway",
            "mx2.gw.example:20",
            "--server",
            &nsd.addr.to_string(),
            "--out",
            out.to_str().unwrap(),
        ],
    )
}

fn checkzone(file: &Path) {
    let out = Command::new("nsd-checkzone")
        .arg("uni.test")
        .arg(file)
        .output()
        .expect("nsd-checkzone (Debian package nsd)");
    assert!(
        out.status.success(),
        "nsd-checkzone rejects {}: {}{}\n{}",
        file.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(file).unwrap_or_default()
    );
}

/// The MX of `name` as the external server answers, by preference ("" is the null MX).
async fn mx(dns: &Dns, name: &str) -> Vec<(u16, String)> {
    match dns.mx(name).await {
        Ok(v) => v,
        Err(DnsError::NotFound) => Vec::new(),
        Err(e) => panic!("MX {name}: {e}"),
    }
}

fn gateways() -> Vec<(u16, String)> {
    vec![(10, "mx1.gw.example".into()), (20, "mx2.gw.example".into())]
}

/// Serves the written zone from a fresh nsd; its resolver and serial.
async fn external(file: &Path) -> (Nsd, Dns, u32) {
    let text = std::fs::read_to_string(file).unwrap();
    let nsd = Nsd::start_zones(&[("uni.test", &text)]).await;
    let dns = Dns::new(&DnsConfig::with_servers(vec![nsd.addr])).unwrap();
    let serial = soa_serial_tcp(nsd.addr, "uni.test", Duration::from_secs(2))
        .await
        .unwrap();
    (nsd, dns, serial)
}

#[tokio::test]
async fn the_external_view_points_via_gateway_mail_at_the_gateways_and_its_serial_follows_content()
{
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("reg.db").display());
    let out = dir.path().join("external");
    std::fs::create_dir(&out).unwrap();
    add(&url, "192.0.2.25", "mx.uni.test", "mail-direct");
    add(&url, "192.0.2.26", "direct.uni.test", "mail-direct");
    add(&url, "192.0.2.30", "gw.uni.test", "mail-via-gateway");
    add(&url, "192.0.2.31", "bare.uni.test", "mail-via-gateway");
    add(&url, "192.0.2.40", "inside.uni.test", "internal-only");

    let internal_nsd = Nsd::start_zones(&[("uni.test", &internal(2026120101, 10))]).await;
    let printed = export(&url, &internal_nsd, &out).unwrap();
    assert!(
        printed.contains("uni.test: serial 2026120101 (changed)"),
        "{printed}"
    );
    let file = out.join("uni.test.zone");
    checkzone(&file);
    let first_text = std::fs::read_to_string(&file).unwrap();

    let (ext, dns, serial) = external(&file).await;
    assert_eq!(serial, 2026120101);
    assert_eq!(mx(&dns, "uni.test").await, [(10, "mx.uni.test".into())]);
    assert_eq!(
        mx(&dns, "direct.uni.test").await,
        [(10, "direct.uni.test".into())]
    );
    assert_eq!(
        mx(&dns, "gw.uni.test").await,
        gateways(),
        "via-gateway host"
    );
    assert_eq!(
        mx(&dns, "dept.uni.test").await,
        gateways(),
        "domain with a via-gateway MX host"
    );
    assert_eq!(
        mx(&dns, "bare.uni.test").await,
        gateways(),
        "via-gateway host without MX"
    );
    assert_eq!(
        mx(&dns, "inside.uni.test").await,
        [(0, String::new())],
        "null MX"
    );
    assert_eq!(
        mx(&dns, "lab.uni.test").await,
        [],
        "only an internal-only MX host"
    );
    assert_eq!(
        dns.addresses("inside.uni.test").await.unwrap(),
        ["192.0.2.40".parse::<std::net::IpAddr>().unwrap()]
    );
    let txt = dns.txt("uni.test").await.unwrap();
    assert_eq!(txt, ["v=spf1 mx -allquote \" inside"], "{txt:?}");
    drop(ext);

    // Unchanged internal zone and registry: same serial, file untouched.
    let printed = export(&url, &internal_nsd, &out).unwrap();
    assert!(
        printed.contains("uni.test: serial 2026120101 (unchanged)"),
        "{printed}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), first_text);

    // A new internal serial whose change the external view does not show (the MX of an
    // internal-only host): the external serial stays.
    drop(internal_nsd);
    let internal_nsd = Nsd::start_zones(&[("uni.test", &internal(2026120102, 20))]).await;
    let printed = export(&url, &internal_nsd, &out).unwrap();
    assert!(
        printed.contains("uni.test: serial 2026120101 (unchanged)"),
        "{printed}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), first_text);

    // A registry change that shows: direct.uni.test goes via the gateway; the serial moves on.
    relayguard(
        &url,
        &[
            "hosts",
            "update",
            "192.0.2.26",
            "--role",
            "mail-via-gateway",
        ],
    )
    .unwrap();
    let printed = export(&url, &internal_nsd, &out).unwrap();
    assert!(
        printed.contains("uni.test: serial 2026120102 (changed)"),
        "{printed}"
    );
    checkzone(&file);
    let (_ext, dns, serial) = external(&file).await;
    assert_eq!(serial, 2026120102);
    assert_eq!(mx(&dns, "direct.uni.test").await, gateways());
    assert_eq!(mx(&dns, "uni.test").await, [(10, "mx.uni.test".into())]);
    // No temporary files are left behind.
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            ".relayguard-external-dns.json",
            ".relayguard-external-dns.lock",
            "uni.test.zone"
        ]
    );
}

#[tokio::test]
async fn bad_input_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("reg.db").display());
    let out = dir.path().join("external");
    std::fs::create_dir(&out).unwrap();
    let nsd = Nsd::start_zones(&[("uni.test", &internal(1, 10))]).await;
    let server = nsd.addr.to_string();
    let out_s = out.to_str().unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["export", "external-dns", "--server", &server];
        args.extend_from_slice(extra);
        relayguard(&url, &args).unwrap_err()
    };
    let e = run(&[
        "--zone",
        "uni.test",
        "--gateway",
        "mx1.gw.example",
        "--out",
        out_s,
    ]);
    assert!(
        e.contains("invalid gateway") && e.contains("NAME:PREFERENCE"),
        "{e}"
    );
    let e = run(&[
        "--zone",
        "uni.test",
        "--gateway",
        "mx1.gw.example:x",
        "--out",
        out_s,
    ]);
    assert!(e.contains("0 to 65535"), "{e}");
    // A zone the server does not serve: nothing is written, not even the zone that did transfer.
    let e = run(&[
        "--zone",
        "uni.test",
        "--zone",
        "other.test",
        "--gateway",
        "mx1.gw.example:10",
        "--out",
        out_s,
    ]);
    assert!(e.contains("zone other.test did not transfer"), "{e}");
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0);
    let e = run(&[
        "--zone",
        "uni/test",
        "--gateway",
        "mx1.gw.example:10",
        "--out",
        out_s,
    ]);
    assert!(e.contains("invalid zone"), "{e}");
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let e = run(&[
        "--zone",
        "uni.test",
        "--gateway",
        "mx1.gw.example:10",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(e.contains("is not a directory"), "{e}");
    let missing = dir.path().join("missing");
    let e = run(&[
        "--zone",
        "uni.test",
        "--gateway",
        "mx1.gw.example:10",
        "--out",
        missing.to_str().unwrap(),
    ]);
    assert!(
        e.contains("output directory") && e.contains("No such file"),
        "{e}"
    );
    let e = relayguard(
        &url,
        &[
            "export",
            "external-dns",
            "--server",
            "not-an-address",
            "--zone",
            "uni.test",
            "--gateway",
            "mx1.gw.example:10",
            "--out",
            out_s,
        ],
    )
    .unwrap_err();
    assert!(
        e.contains("--server") && e.contains("invalid resolver address"),
        "{e}"
    );
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0);
}
