//! Aligned columns for people.

use std::io::Write;

use relayguard_registry::store::FindingRow;

pub(super) fn findings_table(
    out: &mut (dyn Write + Send),
    rows: &[FindingRow],
) -> anyhow::Result<()> {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|f| {
            vec![
                f.severity.to_string(),
                f.kind.clone(),
                f.address.clone(),
                f.port.to_string(),
                f.status.to_string(),
                f.admin_email.clone().unwrap_or_else(|| "-".into()),
                f.summary.clone(),
            ]
        })
        .collect();
    table(
        out,
        &[
            "SEVERITY", "KIND", "ADDRESS", "PORT", "STATUS", "CONTACT", "SUMMARY",
        ],
        &rows,
    )
}

/// Escapes control characters, tabs included: summaries quote SMTP banners, and a banner with
/// ANSI escape sequences must not repaint the operator's terminal (nor a tab break the columns).
pub(super) fn clean(s: &str) -> String {
    relayguard_core::escape_controls(s).replace('\t', "\\t")
}

pub(super) fn table(
    out: &mut (dyn Write + Send),
    header: &[&str],
    rows: &[Vec<String>],
) -> anyhow::Result<()> {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| clean(c)).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == last {
                    c.to_string()
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    writeln!(out, "{}", line(header.to_vec()))?;
    for r in &rows {
        writeln!(out, "{}", line(r.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}
