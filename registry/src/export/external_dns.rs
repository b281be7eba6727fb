//! The external DNS view: the campus's internal zones as the outside world should see them,
//! written as zone files for the external name servers.
//!
//! Mail from outside may reach only `mail-direct` hosts (the firewall passes nobody else on
//! port 25), so the view rewrites MX records by the registrations in force:
//!
//! - a `mail-via-gateway` host's MX set, and any MX of another name that points at a
//!   via-gateway host, becomes the configured gateway MXes with their preferences; a
//!   via-gateway host that has addresses in the zone but no MX gets the gateway MXes too, or
//!   senders would use its address (the implicit MX of RFC 5321) and hit the firewall;
//! - a `mail-direct` host keeps its MX records;
//! - an `internal-only` host's MX records, and MX records pointing at one, are not published;
//!   where that leaves a name with addresses but no MX, a null MX (`0 .`, RFC 7505) is published
//!   instead so that senders bounce at once rather than trying the address for days.
//!
//! Address records are published unchanged, internal-only hosts' included: a role says what a
//! host may do with mail, not whether it may be named (it may serve the web, be the target of a
//! CNAME or SRV record); port 25 is the firewall's to close. DNSSEC records are left out: the
//! rewritten zone has to be signed again by whoever serves it.
//!
//! The SOA serial of a written zone changes when and only when its content does: the hash of
//! the content and the serial given to it are kept per zone in a small state file in the output
//! directory. Nothing is half-written: every zone is computed before anything is written, and
//! each file goes to a temporary file first and is renamed into place.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use aws_lc_rs::digest::{SHA256, digest};
use serde::{Deserialize, Serialize};

use super::in_force;
use crate::model::{Host, Role};
use crate::{Error, Result};

/// The name of the state file kept in the output directory.
pub const STATE_FILE: &str = ".relayguard-external-dns.json";

/// One gateway MX: `mx1.example:10`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gateway {
    /// The exchange's name, lower case, without the trailing dot.
    pub name: String,
    /// The MX preference.
    pub preference: u16,
}

impl FromStr for Gateway {
    type Err = Error;
    fn from_str(s: &str) -> Result<Gateway> {
        let s = s.trim();
        let bad = |why: &str| {
            Error::Invalid(format!(
                "invalid gateway {s:?}: {why} (expected NAME:PREFERENCE, e.g. mx1.example.ac.jp:10)"
            ))
        };
        let (name, pref) = s.rsplit_once(':').ok_or_else(|| bad("no preference"))?;
        let preference = pref
            .parse::<u16>()
            .map_err(|_| bad("the preference must be a number from 0 to 65535"))?;
        let name = plain(name);
        check_name(&name).map_err(|why| bad(&why))?;
        if name.parse::<IpAddr>().is_ok() || !name.contains('.') {
            return Err(bad("an MX must name a host by its full DNS name"));
        }
        Ok(Gateway { name, preference })
    }
}

/// Checks a domain name in presentation form (no trailing dot): letters, digits, `-` and `_`
/// in labels of 1 to 63 characters, 253 in all. It also keeps zone names safe as file names.
pub fn check_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() || name.len() > 253 {
        return Err("a name must have 1 to 253 characters".into());
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("every label must have 1 to 63 characters".into());
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "label {label:?} may hold only letters, digits, '-' and '_'"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label {label:?} may not start or end with '-'"));
        }
    }
    Ok(())
}

/// Lower case without the trailing dot: how names are compared.
fn plain(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// A zone's SOA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Soa {
    /// TTL of the SOA record.
    pub ttl: u32,
    /// Primary name server (presentation form, absolute with trailing dot).
    pub mname: String,
    /// Responsible mailbox (presentation form, absolute with trailing dot).
    pub rname: String,
    /// The serial.
    pub serial: u32,
    /// Refresh interval.
    pub refresh: i32,
    /// Retry interval.
    pub retry: i32,
    /// Expiry.
    pub expire: i32,
    /// Negative-caching TTL.
    pub minimum: u32,
}

/// The data of a record, as much as the view needs to understand.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum RecordData {
    /// An A or AAAA record.
    Address(IpAddr),
    /// An MX record; `exchange` lower case without the trailing dot (empty: the null MX).
    Mx {
        /// Preference.
        preference: u16,
        /// Exchange.
        exchange: String,
    },
    /// Anything else, in zone-file presentation form (`rtype` e.g. `TXT`, `TYPE65`).
    Other {
        /// The type mnemonic.
        rtype: String,
        /// The data, ready for a zone file.
        rdata: String,
    },
}

/// One record of a zone (not the SOA).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ZoneRecord {
    /// Owner name, lower case without the trailing dot.
    pub name: String,
    /// TTL.
    pub ttl: u32,
    /// Data.
    pub data: RecordData,
}

/// An internal zone as transferred.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalZone {
    /// The zone's name, lower case without the trailing dot.
    pub origin: String,
    /// Its SOA.
    pub soa: Soa,
    /// Every other record.
    pub records: Vec<ZoneRecord>,
}

/// The external view of one zone, before it gets its serial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalView {
    /// The records to publish besides the SOA, sorted.
    pub records: Vec<ZoneRecord>,
    /// What the operator should know (MX targets in the zone that are not registered, …).
    pub notes: Vec<String>,
}

/// Roles of the registrations in force, by host name and by address.
struct Roles {
    by_name: BTreeMap<String, Role>,
    by_address: BTreeMap<IpAddr, Role>,
}

impl Roles {
    fn new(hosts: &[Host]) -> Roles {
        let live = hosts.iter().filter(|h| in_force(h));
        Roles {
            by_name: live.clone().map(|h| (plain(&h.hostname), h.role)).collect(),
            by_address: live
                .filter_map(|h| Some((h.address.parse().ok()?, h.role)))
                .collect(),
        }
    }

    /// The role of `name`: its registration by name, else that of its first registered
    /// address in the zone.
    fn of(&self, name: &str, addresses: &BTreeMap<&str, BTreeSet<IpAddr>>) -> Option<Role> {
        self.by_name.get(name).copied().or_else(|| {
            addresses
                .get(name)?
                .iter()
                .find_map(|a| self.by_address.get(a).copied())
        })
    }
}

/// Computes the external view of `zone` from the registrations `hosts`.
pub fn external_view(zone: &InternalZone, hosts: &[Host], gateways: &[Gateway]) -> ExternalView {
    let roles = Roles::new(hosts);
    let mut addresses: BTreeMap<&str, BTreeSet<IpAddr>> = BTreeMap::new();
    let mut mx: BTreeMap<&str, Vec<(u32, u16, &str)>> = BTreeMap::new();
    let mut cnames = BTreeSet::new();
    let mut out = Vec::new();
    for r in &zone.records {
        match &r.data {
            RecordData::Address(a) => {
                addresses.entry(&r.name).or_default().insert(*a);
                out.push(r.clone());
            }
            RecordData::Mx {
                preference,
                exchange,
            } => mx
                .entry(&r.name)
                .or_default()
                .push((r.ttl, *preference, exchange)),
            RecordData::Other { rtype, .. } => {
                if rtype == "CNAME" {
                    cnames.insert(r.name.as_str());
                }
                if !matches!(
                    rtype.as_str(),
                    "RRSIG" | "NSEC" | "NSEC3" | "NSEC3PARAM" | "DNSKEY" | "CDS" | "CDNSKEY"
                ) {
                    out.push(r.clone());
                }
            }
        }
    }
    let mut notes = Vec::new();
    let in_zone = |name: &str| name == zone.origin || name.ends_with(&format!(".{}", zone.origin));
    let gateway_set = |ttl: u32| -> Vec<(u32, u16, String)> {
        gateways
            .iter()
            .map(|g| (ttl, g.preference, g.name.clone()))
            .collect()
    };
    let mut published: BTreeMap<String, Vec<(u32, u16, String)>> = BTreeMap::new();
    for (owner, set) in &mx {
        let ttl = set
            .iter()
            .map(|(t, _, _)| *t)
            .min()
            .unwrap_or(zone.soa.minimum);
        let new: Vec<(u32, u16, String)> = match roles.of(owner, &addresses) {
            Some(Role::MailViaGateway) => gateway_set(ttl),
            Some(Role::InternalOnly) => Vec::new(),
            Some(Role::MailDirect) => set
                .iter()
                .map(|(t, p, e)| (*t, *p, (*e).to_string()))
                .collect(),
            Some(Role::NonMail) | None => {
                let mut v = Vec::new();
                for (t, p, e) in set {
                    match roles.of(e, &addresses) {
                        Some(Role::MailViaGateway) => v.extend(gateway_set(*t)),
                        Some(Role::InternalOnly) => {}
                        role => {
                            if role.is_none() && in_zone(e) {
                                notes.push(format!(
                                    "MX of {owner} names {e}, which has no registration in \
                                     force: published as it is"
                                ));
                            }
                            v.push((*t, *p, (*e).to_string()));
                        }
                    }
                }
                v
            }
        };
        published.insert((*owner).to_string(), new);
    }
    // Via-gateway hosts named in this zone without MX: mail would go to their address.
    for (name, role) in &roles.by_name {
        if *role == Role::MailViaGateway
            && addresses.contains_key(name.as_str())
            && !published.contains_key(name)
            && !cnames.contains(name.as_str())
        {
            let ttl = zone
                .records
                .iter()
                .find(|r| &r.name == name)
                .map_or(zone.soa.minimum, |r| r.ttl);
            published.insert(name.clone(), gateway_set(ttl));
        }
    }
    for (owner, set) in published {
        // One record per exchange, at its best preference.
        let mut best: BTreeMap<String, (u32, u16)> = BTreeMap::new();
        for (t, p, e) in set {
            let entry = best.entry(e).or_insert((t, p));
            if p < entry.1 {
                *entry = (t, p);
            }
        }
        if best.is_empty() {
            if addresses.contains_key(owner.as_str()) {
                let ttl = mx
                    .get(owner.as_str())
                    .and_then(|s| s.iter().map(|(t, _, _)| *t).min())
                    .unwrap_or(zone.soa.minimum);
                out.push(ZoneRecord {
                    name: owner,
                    ttl,
                    data: RecordData::Mx {
                        preference: 0,
                        exchange: String::new(),
                    },
                });
            }
            continue;
        }
        for (exchange, (ttl, preference)) in best {
            out.push(ZoneRecord {
                name: owner.clone(),
                ttl,
                data: RecordData::Mx {
                    preference,
                    exchange,
                },
            });
        }
    }
    out.sort();
    out.dedup();
    ExternalView {
        records: out,
        notes,
    }
}

/// An absolute name for a zone file.
fn absolute(name: &str) -> String {
    if name.is_empty() {
        ".".into()
    } else {
        format!("{name}.")
    }
}

/// The zone file of `view` with `serial` in its SOA.
pub fn render(zone: &InternalZone, view: &ExternalView, serial: u32) -> String {
    let soa = &zone.soa;
    let mut s = format!(
        "; external view of {origin}, generated by relayguard from the internal zone and the \
         registry\n$ORIGIN {o}\n{o} {ttl} IN SOA {m} {r} {serial} {refresh} {retry} {expire} {min}\n",
        origin = zone.origin,
        o = absolute(&zone.origin),
        ttl = soa.ttl,
        m = soa.mname,
        r = soa.rname,
        refresh = soa.refresh,
        retry = soa.retry,
        expire = soa.expire,
        min = soa.minimum,
    );
    for r in &view.records {
        let name = absolute(&r.name);
        let _ = match &r.data {
            RecordData::Address(IpAddr::V4(a)) => writeln!(s, "{name} {} IN A {a}", r.ttl),
            RecordData::Address(IpAddr::V6(a)) => writeln!(s, "{name} {} IN AAAA {a}", r.ttl),
            RecordData::Mx {
                preference,
                exchange,
            } => writeln!(
                s,
                "{name} {} IN MX {preference} {}",
                r.ttl,
                absolute(exchange)
            ),
            RecordData::Other { rtype, rdata } => {
                writeln!(s, "{name} {} IN {rtype} {rdata}", r.ttl)
            }
        };
    }
    s
}

/// What was written for one zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenZone {
    /// The zone.
    pub zone: String,
    /// The zone file.
    pub path: PathBuf,
    /// The serial in its SOA.
    pub serial: u32,
    /// Whether the content changed since the last run (and so the serial).
    pub changed: bool,
    /// What the operator should know.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    version: u32,
    zones: BTreeMap<String, ZoneState>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ZoneState {
    /// SHA-256 of the zone file with its serial left out.
    sha256: String,
    serial: u32,
}

fn load_state(path: &Path) -> Result<State> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            Error::Invalid(format!(
                "{} is not a relayguard external-DNS state file: {e}",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State {
            version: 1,
            zones: BTreeMap::new(),
        }),
        Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
    }
}

/// Writes `data` to `path` through a temporary file in the same directory and a rename.
fn write_atomically(path: &Path, data: &[u8]) -> Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("zone");
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let io = |what: &str, p: &Path| {
        let what = format!("{what} {}", p.display());
        move |e| Error::io(what, e)
    };
    let mut f = std::fs::File::create(&tmp).map_err(io("creating", &tmp))?;
    f.write_all(data).map_err(io("writing", &tmp))?;
    f.sync_all().map_err(io("writing", &tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(format!("renaming onto {}", path.display()), e)
    })
}

/// Checks that `dir` is a directory we can write in (by creating and removing a file there),
/// before anything is written.
fn check_writable(dir: &Path) -> Result<()> {
    let meta = std::fs::metadata(dir)
        .map_err(|e| Error::io(format!("output directory {}", dir.display()), e))?;
    if !meta.is_dir() {
        return Err(Error::Invalid(format!(
            "output {} is not a directory",
            dir.display()
        )));
    }
    let probe = dir.join(".relayguard-write-test");
    std::fs::write(&probe, b"").map_err(|e| {
        Error::io(
            format!("output directory {} is not writable", dir.display()),
            e,
        )
    })?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Writes the external view of every zone into `dir` as `ZONE.zone`, giving each a serial that
/// increases exactly when its content changes (the first serial is the internal zone's).
pub fn write_zones(
    dir: &Path,
    zones: &[InternalZone],
    hosts: &[Host],
    gateways: &[Gateway],
) -> Result<Vec<WrittenZone>> {
    if gateways.is_empty() {
        return Err(Error::Invalid(
            "at least one gateway MX is needed (--gateway NAME:PREFERENCE)".into(),
        ));
    }
    for (i, g) in gateways.iter().enumerate() {
        if gateways[..i].iter().any(|o| o.name == g.name) {
            return Err(Error::Invalid(format!(
                "gateway {} is given twice (one --gateway per MX host)",
                g.name
            )));
        }
    }
    for z in zones {
        check_name(&z.origin)
            .map_err(|why| Error::Invalid(format!("zone {:?}: {why}", z.origin)))?;
    }
    check_writable(dir)?;
    // Two exports into one directory at once would race on the serials: one at a time.
    let lock_path = dir.join(".relayguard-external-dns.lock");
    let lock = std::fs::File::create(&lock_path)
        .map_err(|e| Error::io(format!("creating {}", lock_path.display()), e))?;
    lock.lock()
        .map_err(|e| Error::io(format!("locking {}", lock_path.display()), e))?;
    let state_path = dir.join(STATE_FILE);
    let mut state = load_state(&state_path)?;
    // Compute everything first: an error leaves the directory as it was.
    let mut plans = Vec::new();
    for z in zones {
        let view = external_view(z, hosts, gateways);
        let hash = hex(digest(&SHA256, render(z, &view, 0).as_bytes()).as_ref());
        let previous = state.zones.get(&z.origin);
        let (serial, changed) = match previous {
            Some(p) if p.sha256 == hash => (p.serial, false),
            Some(p) => (next_serial(p.serial, z.soa.serial), true),
            None => (z.soa.serial, true),
        };
        let text = render(z, &view, serial);
        let path = dir.join(format!("{}.zone", z.origin));
        plans.push((
            z.origin.clone(),
            path,
            serial,
            changed,
            hash,
            text,
            view.notes,
        ));
    }
    let mut written = Vec::new();
    for (zone, path, serial, changed, hash, text, notes) in plans {
        let on_disk = std::fs::read(&path).ok();
        if changed || on_disk.as_deref() != Some(text.as_bytes()) {
            write_atomically(&path, text.as_bytes())?;
        }
        state.zones.insert(
            zone.clone(),
            ZoneState {
                sha256: hash,
                serial,
            },
        );
        written.push(WrittenZone {
            zone,
            path,
            serial,
            changed,
            notes,
        });
    }
    state.version = 1;
    let bytes = serde_json::to_vec_pretty(&state)
        .map_err(|e| Error::io("encoding the state file", std::io::Error::other(e)))?;
    write_atomically(&state_path, &bytes)?;
    Ok(written)
}

/// The serial after `previous`: one more, or the internal zone's serial when that is ahead (so
/// a date-based internal serial shows through), in RFC 1982 serial arithmetic.
fn next_serial(previous: u32, internal: u32) -> u32 {
    let next = previous.wrapping_add(1);
    let ahead = internal.wrapping_sub(next);
    if ahead != 0 && ahead < (1 << 31) {
        internal
    } else {
        next
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::HostStatus;

    fn host(address: &str, hostname: &str, role: Role) -> Host {
        Host {
            address: address.into(),
            hostname: hostname.into(),
            role,
            admin_name: "Tanaka".into(),
            admin_email: "tanaka@campus.test".into(),
            note: String::new(),
            registered_on: "2026-01-01".into(),
            reviewed_on: crate::model::format_date(crate::model::today()),
            review_months: 6,
            status: HostStatus::Active,
            admin_lang: None,
        }
    }

    fn rec(name: &str, data: RecordData) -> ZoneRecord {
        ZoneRecord {
            name: name.into(),
            ttl: 3600,
            data,
        }
    }

    fn mx(name: &str, preference: u16, exchange: &str) -> ZoneRecord {
        rec(
            name,
            RecordData::Mx {
                preference,
                exchange: exchange.into(),
            },
        )
    }

    fn a(name: &str, ip: &str) -> ZoneRecord {
        rec(name, RecordData::Address(ip.parse().unwrap()))
    }

    fn zone(records: Vec<ZoneRecord>) -> InternalZone {
        InternalZone {
            origin: "campus.test".into(),
            soa: Soa {
                ttl: 3600,
                mname: "ns.campus.test.".into(),
                rname: "hostmaster.campus.test.".into(),
                serial: 7,
                refresh: 3600,
                retry: 600,
                expire: 86400,
                minimum: 300,
            },
            records,
        }
    }

    fn mx_of(view: &ExternalView, owner: &str) -> Vec<(u16, String)> {
        view.records
            .iter()
            .filter(|r| r.name == owner)
            .filter_map(|r| match &r.data {
                RecordData::Mx {
                    preference,
                    exchange,
                } => Some((*preference, exchange.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn gateways_parse_or_say_why_not() {
        let g: Gateway = "MX1.Example.AC.JP.:10".parse().unwrap();
        assert_eq!(
            g,
            Gateway {
                name: "mx1.example.ac.jp".into(),
                preference: 10
            }
        );
        for (bad, why) in [
            ("mx1.example", "no preference"),
            ("mx1.example:ten", "0 to 65535"),
            ("mx1.example:70000", "0 to 65535"),
            ("mx 1.example:10", "letters, digits"),
            ("192.0.2.1:10", "full DNS name"),
            ("mx1:10", "full DNS name"),
            (":10", "1 to 253"),
        ] {
            let e = bad.parse::<Gateway>().unwrap_err().to_string();
            assert!(
                e.contains(why) && e.contains("NAME:PREFERENCE"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn mx_records_follow_the_role_of_their_host() {
        let hosts = [
            host("192.0.2.10", "direct.campus.test", Role::MailDirect),
            host("192.0.2.20", "gw.campus.test", Role::MailViaGateway),
            host("192.0.2.30", "inside.campus.test", Role::InternalOnly),
            host("192.0.2.40", "bare.campus.test", Role::MailViaGateway),
        ];
        let z = zone(vec![
            a("direct.campus.test", "192.0.2.10"),
            mx("direct.campus.test", 10, "direct.campus.test"),
            a("gw.campus.test", "192.0.2.20"),
            mx("gw.campus.test", 10, "gw.campus.test"),
            a("inside.campus.test", "192.0.2.30"),
            mx("inside.campus.test", 10, "inside.campus.test"),
            a("bare.campus.test", "192.0.2.40"),
            // A department domain whose MX is the via-gateway host, by address only.
            mx("dept.campus.test", 5, "gw2.campus.test"),
            a("gw2.campus.test", "192.0.2.20"),
            // Mixed: a direct primary and an internal-only backup.
            mx("lab.campus.test", 10, "direct.campus.test"),
            mx("lab.campus.test", 20, "inside.campus.test"),
            // An external provider: untouched, no note.
            mx("campus.test", 10, "mx.provider.example"),
        ]);
        let gws = [
            "mx1.gw.example:10".parse().unwrap(),
            "mx2.gw.example:20".parse().unwrap(),
        ];
        let v = external_view(&z, &hosts, &gws);
        let gateway = vec![
            (10, "mx1.gw.example".to_string()),
            (20, "mx2.gw.example".to_string()),
        ];
        assert_eq!(
            mx_of(&v, "direct.campus.test"),
            [(10, "direct.campus.test".into())]
        );
        assert_eq!(mx_of(&v, "gw.campus.test"), gateway);
        assert_eq!(mx_of(&v, "dept.campus.test"), gateway);
        assert_eq!(mx_of(&v, "bare.campus.test"), gateway);
        assert_eq!(mx_of(&v, "inside.campus.test"), [(0, String::new())]);
        assert_eq!(
            mx_of(&v, "lab.campus.test"),
            [(10, "direct.campus.test".into())]
        );
        assert_eq!(
            mx_of(&v, "campus.test"),
            [(10, "mx.provider.example".into())]
        );
        // Addresses stay, internal-only ones included.
        assert!(v.records.contains(&a("inside.campus.test", "192.0.2.30")));
        assert!(v.notes.is_empty(), "{:?}", v.notes);

        // A suspended via-gateway registration is not in force: its MX is published as is,
        // with a note.
        let mut suspended = hosts.clone();
        suspended[1].status = crate::model::HostStatus::Suspended;
        let v = external_view(&z, &suspended, &gws);
        assert_eq!(mx_of(&v, "gw.campus.test"), [(10, "gw.campus.test".into())]);
        assert!(
            v.notes.iter().any(|n| n.contains("gw.campus.test")),
            "{:?}",
            v.notes
        );
        // So is one past its review date, until it is renewed.
        let mut expired = hosts.clone();
        expired[1].reviewed_on =
            crate::model::format_date(crate::model::add_months(crate::model::today(), -7));
        let v = external_view(&z, &expired, &gws);
        assert_eq!(mx_of(&v, "gw.campus.test"), [(10, "gw.campus.test".into())]);
        assert_eq!(
            mx_of(&v, "dept.campus.test"),
            [(5, "gw2.campus.test".into())],
            "its address's registration is not in force either"
        );
    }

    #[test]
    fn the_serial_moves_only_with_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = [host("192.0.2.20", "gw.campus.test", Role::MailViaGateway)];
        let gws = ["mx1.gw.example:10".parse().unwrap()];
        let mut z = zone(vec![
            a("gw.campus.test", "192.0.2.20"),
            mx("gw.campus.test", 10, "gw.campus.test"),
        ]);
        let first = write_zones(dir.path(), &[z.clone()], &hosts, &gws).unwrap();
        assert_eq!((first[0].serial, first[0].changed), (7, true));
        let text = std::fs::read_to_string(&first[0].path).unwrap();
        assert!(
            text.contains("IN SOA ns.campus.test. hostmaster.campus.test. 7 "),
            "{text}"
        );
        assert!(
            text.contains("gw.campus.test. 3600 IN MX 10 mx1.gw.example."),
            "{text}"
        );

        // A new internal serial with the same external content: nothing moves.
        z.soa.serial = 8;
        let again = write_zones(dir.path(), &[z.clone()], &hosts, &gws).unwrap();
        assert_eq!((again[0].serial, again[0].changed), (7, false));

        // A change that shows: the serial moves on (to the internal one, which is ahead).
        z.records.push(a("new.campus.test", "192.0.2.99"));
        let changed = write_zones(dir.path(), &[z.clone()], &hosts, &gws).unwrap();
        assert_eq!((changed[0].serial, changed[0].changed), (8, true));
        // …and by one when the internal serial is behind.
        z.records.pop();
        let back = write_zones(dir.path(), &[z], &hosts, &gws).unwrap();
        assert_eq!((back[0].serial, back[0].changed), (9, true));
    }

    #[test]
    fn nothing_is_written_without_a_gateway_or_into_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let e = write_zones(dir.path(), &[zone(vec![])], &[], &[]).unwrap_err();
        assert!(e.to_string().contains("--gateway"), "{e}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let file = dir.path().join("f");
        std::fs::write(&file, "").unwrap();
        let gws = ["mx1.gw.example:10".parse().unwrap()];
        let twice = [
            "mx1.gw.example:10".parse().unwrap(),
            "MX1.gw.example.:20".parse().unwrap(),
        ];
        let e = write_zones(dir.path(), &[zone(vec![])], &[], &twice).unwrap_err();
        assert!(e.to_string().contains("given twice"), "{e}");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "only the file"
        );
        let e = write_zones(&file, &[zone(vec![])], &[], &gws).unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
        let mut bad = zone(vec![]);
        bad.origin = "x/etc".into();
        let e = write_zones(dir.path(), &[bad], &[], &gws).unwrap_err();
        assert!(e.to_string().contains("letters, digits"), "{e}");
    }

    #[test]
    fn serials_wrap_in_serial_arithmetic() {
        assert_eq!(next_serial(u32::MAX, 0), 0);
        assert_eq!(next_serial(5, 3), 6);
        assert_eq!(next_serial(5, 2026120301), 2026120301);
    }
}
