//! CSV import and export of registrations.
//!
//! Import is all-or-nothing: every row is validated first and all problems are reported with
//! their line numbers, so a file with one typo never leaves half its rows registered.

use std::collections::HashSet;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::model::{Host, HostInput, today};
use crate::store::Store;

/// The column order of exports (and the columns imports understand).
pub const HEADER: [&str; 11] = [
    "address",
    "hostname",
    "role",
    "admin_name",
    "admin_email",
    "note",
    "registered_on",
    "reviewed_on",
    "review_months",
    "status",
    "admin_lang",
];

/// Most rows one import may carry (a campus has tens of thousands of hosts, not millions).
pub const MAX_ROWS: usize = 200_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CsvRow {
    address: String,
    hostname: String,
    role: String,
    admin_name: String,
    admin_email: String,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    registered_on: Option<String>,
    #[serde(default)]
    reviewed_on: Option<String>,
    #[serde(default)]
    review_months: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    admin_lang: Option<String>,
}

/// Parses and validates a registrations CSV (header row required; see [`HEADER`]).
/// Returns every problem at once, one per line, as [`Error::Invalid`].
pub fn parse_hosts_csv(data: &[u8]) -> Result<Vec<Host>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(data);
    let today = today();
    let mut hosts = Vec::new();
    let mut errors = Vec::new();
    let mut keys = HashSet::new();
    // Check the header first: a file without one (or with a typo in a column name) would
    // otherwise fail on every row, or worse, import nothing and say so quietly.
    let header = reader
        .headers()
        .map_err(|e| Error::Invalid(format!("CSV header: {}", csv_message(&e))))?
        .clone();
    let missing: Vec<&str> = HEADER[..5]
        .iter()
        .copied()
        .filter(|c| !header.iter().any(|h| h == *c))
        .collect();
    let unknown: Vec<&str> = header.iter().filter(|h| !HEADER.contains(h)).collect();
    if !missing.is_empty() || !unknown.is_empty() {
        return Err(Error::Invalid(format!(
            "CSV header must name the columns {} (required: the first five); missing: [{}], unknown: [{}]",
            HEADER.join(","),
            missing.join(", "),
            unknown.join(", ")
        )));
    }
    for (i, rec) in reader.deserialize::<CsvRow>().enumerate() {
        // Line numbers as an editor shows them: the header is line 1.
        let line = rec.as_ref().ok().map(|_| i + 2);
        let row = match rec {
            Ok(r) => r,
            Err(e) => {
                let at = e
                    .position()
                    .map(|p| format!("line {}", p.line()))
                    .unwrap_or_else(|| format!("row {}", i + 1));
                errors.push(format!("{at}: {}", csv_message(&e)));
                continue;
            }
        };
        let line = line.unwrap_or(i + 2);
        if hosts.len() + errors.len() >= MAX_ROWS {
            errors.push(format!("more than {MAX_ROWS} rows: split the file"));
            break;
        }
        let months = match row
            .review_months
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            None => None,
            Some(m) => match m.parse::<i64>() {
                Ok(v) => Some(v),
                Err(_) => {
                    errors.push(format!(
                        "line {line}: invalid review_months {m:?} (expected a number of months)"
                    ));
                    continue;
                }
            },
        };
        let input = HostInput {
            address: row.address,
            hostname: row.hostname,
            role: row.role,
            admin_name: row.admin_name,
            admin_email: row.admin_email,
            note: row.note,
            registered_on: row.registered_on,
            reviewed_on: row.reviewed_on,
            review_months: months,
            status: row.status,
            admin_lang: row.admin_lang,
        };
        match input.validate(today) {
            Ok(h) => {
                if keys.insert(h.address.clone()) {
                    hosts.push(h);
                } else {
                    errors.push(format!(
                        "line {line}: duplicate address {} in this file",
                        h.address
                    ));
                }
            }
            Err(e) => errors.push(format!("line {line}: {e}")),
        }
    }
    if errors.is_empty() {
        Ok(hosts)
    } else {
        Err(Error::Invalid(format!(
            "{} problem(s) in the CSV, nothing imported:\n{}",
            errors.len(),
            errors.join("\n")
        )))
    }
}

fn csv_message(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::Deserialize { err, .. } => format!("{err} (columns: {})", HEADER.join(",")),
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => {
            format!("{len} fields where the header has {expected_len}")
        }
        csv::ErrorKind::Utf8 { .. } => "not valid UTF-8".into(),
        _ => e.to_string(),
    }
}

/// Imports a registrations CSV: validates everything, rejects addresses already registered,
/// then inserts all rows in one transaction. Returns how many were imported.
pub async fn import_hosts(store: &Store, data: &[u8]) -> Result<usize> {
    let hosts = parse_hosts_csv(data)?;
    let existing: HashSet<String> = store
        .list_hosts()
        .await?
        .into_iter()
        .map(|h| h.address)
        .collect();
    let dups: Vec<&str> = hosts
        .iter()
        .filter(|h| existing.contains(&h.address))
        .map(|h| h.address.as_str())
        .collect();
    if !dups.is_empty() {
        return Err(Error::Conflict(format!(
            "already registered, nothing imported: {}",
            dups.join(", ")
        )));
    }
    store.add_hosts(&hosts).await?;
    Ok(hosts.len())
}

/// Writes registrations as CSV with [`HEADER`] (round-trips through [`parse_hosts_csv`]).
pub fn hosts_to_csv(hosts: &[Host]) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let io = |e: csv::Error| Error::Invalid(format!("writing CSV: {e}"));
    w.write_record(HEADER).map_err(io)?;
    for h in hosts {
        w.write_record([
            h.address.as_str(),
            &h.hostname,
            h.role.as_str(),
            &h.admin_name,
            &h.admin_email,
            &h.note,
            &h.registered_on,
            &h.reviewed_on,
            &h.review_months.to_string(),
            h.status.as_str(),
            h.admin_lang.map_or("", |l| l.as_str()),
        ])
        .map_err(io)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| Error::Invalid(format!("writing CSV: {e}")))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_errors_reported_with_lines() {
        let data = "address,hostname,role,admin_name,admin_email\n\
                    10.0.0.1,a.example,mail-direct,A,a@x.example\n\
                    10.0.0.300,b.example,mail-direct,B,b@x.example\n\
                    10.0.0.2,c.example,mailserver,C,c@x.example\n\
                    10.0.0.3,d.example,non-mail,D,not-an-email\n\
                    10.0.0.1,e.example,non-mail,E,e@x.example\n";
        let err = parse_hosts_csv(data.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("line 3: invalid IP address"), "{err}");
        assert!(err.contains("line 4: invalid role"), "{err}");
        assert!(err.contains("line 5: invalid e-mail"), "{err}");
        assert!(err.contains("line 6: duplicate address 10.0.0.1"), "{err}");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for data in [
            &b"\xff\xfe\x00garbage"[..],
            b"",
            b"address\n1.2.3.4\n",
            b"a,b\n1,2,3\n",
        ] {
            let _ = parse_hosts_csv(data);
        }
        assert!(parse_hosts_csv(b"address,hostname\n1.2.3.4,x\n").is_err());
    }
}
