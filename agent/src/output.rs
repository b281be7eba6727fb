//! Presenting results: aligned tables for people, JSON for programs.

use relayguard_core::agent_report::{CheckResult, FactKind, LiveFacts};

use crate::harden::plan::Plan;

/// Whether the result shows an MTA that could accept mail from the network now or after boot.
pub fn needs_attention(r: &CheckResult) -> bool {
    r.findings.iter().any(|f| {
        matches!(
            f.fact,
            FactKind::EnabledAtBoot | FactKind::Running | FactKind::Listening
        ) && f.mta.listens()
    })
}

/// Renders a check result as a table.
pub fn table(r: &CheckResult) -> String {
    let mut rows: Vec<[String; 5]> = vec![[
        "MTA".into(),
        "FACT".into(),
        "MECHANISM".into(),
        "EVIDENCE".into(),
        "DETAIL".into(),
    ]];
    for f in &r.findings {
        rows.push([
            f.mta.as_str().into(),
            f.fact.as_str().into(),
            f.mechanism
                .map(relayguard_core::agent_report::Mechanism::as_str)
                .unwrap_or("-")
                .into(),
            f.evidence.clone(),
            f.detail.clone(),
        ]);
    }
    let mut w = [0usize; 4];
    for r in &rows {
        for (i, c) in r.iter().take(4).enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut out = format!("root: {}\n", r.root);
    match &r.live {
        LiveFacts::Checked => out.push_str("live facts: processes and sockets checked\n"),
        LiveFacts::Skipped { reason } => out.push_str(&format!("live facts: skipped ({reason})\n")),
    }
    if r.findings.is_empty() {
        out.push_str("no MTA found\n");
    } else {
        out.push_str(&summary(r));
        out.push('\n');
        for r in rows {
            out.push_str(&format!(
                "{:w0$}  {:w1$}  {:w2$}  {:w3$}  {}\n",
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                w0 = w[0],
                w1 = w[1],
                w2 = w[2],
                w3 = w[3]
            ));
        }
    }
    for warn in &r.warnings {
        out.push_str(&format!("warning: {warn}\n"));
    }
    out
}

/// One line per MTA: the verdict first, the proof follows in the detailed table.
pub fn summary(r: &CheckResult) -> String {
    let mut mtas: Vec<_> = r.findings.iter().map(|f| f.mta).collect();
    mtas.dedup();
    let mut out = String::new();
    for m in mtas {
        let of = |k: FactKind| r.findings.iter().filter(move |f| f.mta == m && f.fact == k);
        let mut mechs: Vec<&str> = of(FactKind::EnabledAtBoot)
            .filter_map(|f| {
                f.mechanism
                    .map(relayguard_core::agent_report::Mechanism::as_str)
            })
            .collect();
        mechs.sort_unstable();
        mechs.dedup();
        let boot = if mechs.is_empty() {
            "not enabled at boot".to_string()
        } else {
            format!("ENABLED at boot via {}", mechs.join(", "))
        };
        let mut parts = vec![boot];
        if of(FactKind::Masked).next().is_some() {
            parts.push("masked".into());
        }
        let running = of(FactKind::Running).count();
        if running > 0 {
            parts.push(format!("RUNNING ({running} processes)"));
        }
        let listening: Vec<&str> = of(FactKind::Listening)
            .map(|f| f.detail.split(" held by").next().unwrap_or(""))
            .collect();
        if !listening.is_empty() {
            parts.push(format!("LISTENING on {}", listening.join(", ")));
        }
        if of(FactKind::Exposed).next().is_some() {
            parts.push("config binds external interfaces".into());
        } else if of(FactKind::LoopbackOnly).next().is_some() {
            parts.push("config binds loopback only".into());
        }
        if !m.listens() {
            parts.push("send-only".into());
        }
        out.push_str(&format!("{:10} {}\n", m.as_str(), parts.join("; ")));
    }
    out
}

/// Renders a harden plan.
pub fn plan(p: &Plan, dry_run: bool) -> String {
    let mut out = String::new();
    if p.steps.is_empty() {
        out.push_str("nothing to change\n");
    } else {
        out.push_str(if dry_run {
            "plan (dry run, nothing changed):\n"
        } else {
            "changes:\n"
        });
        for (i, s) in p.steps.iter().enumerate() {
            out.push_str(&format!(
                "{:3}. [{} / {}] {}\n",
                i + 1,
                s.mta.as_str(),
                s.mechanism.as_str(),
                s.description
            ));
        }
    }
    for n in &p.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out
}
