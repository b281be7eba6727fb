//! The words of a digest in English and Japanese.

use relayguard_core::agent_report::QueueHealth;

use super::Lang;
use super::routing::{Change, Digest};

/// The fixed text of a digest in one language.
pub(super) struct Labels {
    pub(super) greeting: &'static str,
    pub(super) intro_registered: &'static str,
    pub(super) intro_owner: &'static str,
    pub(super) intro_fallback: &'static str,
    pub(super) summary: &'static str,
    pub(super) cols: [&'static str; 5],
    pub(super) mta: &'static str,
    pub(super) unknown: &'static str,
    pub(super) evidence: &'static str,
    pub(super) first_seen: &'static str,
    pub(super) resolved_at: &'static str,
    pub(super) fix: &'static str,
    pub(super) stop: &'static str,
    pub(super) queue_fix: &'static str,
    pub(super) footer: &'static str,
}

/// English.
const EN: Labels = Labels {
    greeting: "Hello {name},",
    intro_registered: "relayguard, the campus mail-server audit, found the following on hosts registered with you as administrator.",
    intro_owner: "relayguard, the campus mail-server audit, found the following on hosts in network {cidr}, which you own. These hosts have no registered administrator: please forward this to whoever runs them.",
    intro_fallback: "relayguard found the following on hosts with no registered administrator and no network owner.",
    summary: "Summary",
    cols: ["ADDRESS", "PORT", "SEVERITY", "STATUS", "FINDING"],
    mta: "Detected mail server",
    unknown: "unknown",
    evidence: "Evidence",
    first_seen: "first seen",
    resolved_at: "resolved",
    fix: "How to fix it",
    stop: "This host should not run a mail server",
    queue_fix: "What to do about the mail queue",
    footer: "This message was sent automatically by relayguard. You will hear again only about new, changed or resolved findings, and a reminder while findings stay open. Questions: reply to this message.",
};

/// Japanese.
const JA: Labels = Labels {
    greeting: "{name} 様",
    intro_registered: "学内メールサーバ検査 (relayguard) で、あなたが管理者として登録されているホストに次の問題が見つかりました。",
    intro_owner: "学内メールサーバ検査 (relayguard) で、あなたが管理するネットワーク {cidr} 内のホストに次の問題が見つかりました。これらのホストには管理者が登録されていません。実際の運用者に転送してください。",
    intro_fallback: "relayguard で、管理者もネットワーク管理者も登録されていないホストに次の問題が見つかりました。",
    summary: "概要",
    cols: ["アドレス", "ポート", "重大度", "状態", "問題"],
    mta: "検出したメールサーバ",
    unknown: "不明",
    evidence: "証拠",
    first_seen: "初回検出",
    resolved_at: "解決",
    fix: "対処方法",
    stop: "このホストではメールサーバを動かさないでください",
    queue_fix: "メールキューへの対処",
    footer: "このメールは relayguard が自動送信しています。今後は新しい問題・変化・解決があった場合と、未対応の問題が残っている場合の再通知のみお送りします。ご質問はこのメールに返信してください。",
};

/// The labels of `lang`.
pub(super) fn labels(lang: Lang) -> &'static Labels {
    match lang {
        Lang::En => &EN,
        Lang::Ja => &JA,
    }
}

/// What changed about a finding, in `lang`.
pub(super) fn change_label(c: &Change, lang: Lang) -> String {
    match (lang, c) {
        (Lang::En, Change::New) => "new".into(),
        (Lang::En, Change::Reopened) => "open again".into(),
        (Lang::En, Change::SeverityChanged { from }) => format!("severity changed (was {from})"),
        (Lang::En, Change::Reminder) => "still open (reminder)".into(),
        (Lang::En, Change::StillOpen) => "still open".into(),
        (Lang::En, Change::Resolved) => "resolved".into(),
        (Lang::Ja, Change::New) => "新規".into(),
        (Lang::Ja, Change::Reopened) => "再発".into(),
        (Lang::Ja, Change::SeverityChanged { from }) => format!("重大度変更（以前は {from}）"),
        (Lang::Ja, Change::Reminder) => "未対応（再通知）".into(),
        (Lang::Ja, Change::StillOpen) => "未対応".into(),
        (Lang::Ja, Change::Resolved) => "解決済み".into(),
    }
}

/// An age in seconds, to the minute under an hour, then hours and days.
fn age(secs: u64, lang: Lang) -> String {
    let (d, h, m) = (secs / 86400, secs % 86400 / 3600, secs % 3600 / 60);
    match lang {
        Lang::En if d > 0 => format!("{d} d {h} h"),
        Lang::En if h > 0 => format!("{h} h {m} min"),
        Lang::En => format!("{m} min"),
        Lang::Ja if d > 0 => format!("{d} 日 {h} 時間"),
        Lang::Ja if h > 0 => format!("{h} 時間 {m} 分"),
        Lang::Ja => format!("{m} 分"),
    }
}

/// What the agent saw in a mail server's queue (`mail-queue-backlog`, `bounce-burst`
/// evidence), in one sentence.
pub(super) fn queue_seen(q: &QueueHealth, lang: Lang) -> String {
    let per_queue = q
        .queues
        .iter()
        .map(|(name, n)| format!("{name} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    match lang {
        Lang::En => {
            let mut s = format!(
                "The agent saw {} messages queued ({per_queue}; `{}`), {} of them bounces (null sender)",
                q.messages, q.source, q.null_sender
            );
            if let Some(n) = q.bounces_since_last {
                s += &format!(", and {n} bounces generated since its previous report");
            }
            if let Some(a) = q.oldest_age_secs {
                s += &format!("; the oldest has waited {}", age(a, lang));
            }
            s + "."
        }
        Lang::Ja => {
            let mut s = format!(
                "エージェントの報告: キュー内 {} 通（{per_queue}、`{}`）、うちバウンス（空の送信者）{} 通",
                q.messages, q.source, q.null_sender
            );
            if let Some(n) = q.bounces_since_last {
                s += &format!("、前回の報告以降に生成したバウンス {n} 通");
            }
            if let Some(a) = q.oldest_age_secs {
                s += &format!("、最も古いメッセージは {} 待機中", age(a, lang));
            }
            s + "。"
        }
    }
}

/// The subject line (one line; lettre RFC 2047-encodes it when it is not ASCII).
pub fn subject(d: &Digest, lang: Lang) -> String {
    let (news, resolved, open) = d.counts();
    match lang {
        Lang::En if news == 0 && resolved == 0 => {
            format!("[relayguard] Reminder: {open} mail server finding(s) still open on your hosts")
        }
        Lang::En => format!(
            "[relayguard] Mail server findings on your hosts: {news} new, {resolved} resolved, {open} open"
        ),
        Lang::Ja if news == 0 && resolved == 0 => {
            format!(
                "[relayguard] 再通知: 管理ホストに未対応のメールサーバの問題が {open} 件あります"
            )
        }
        Lang::Ja => format!(
            "[relayguard] 管理ホストのメールサーバ検査結果: 新規 {news} 件、解決 {resolved} 件、未対応 {open} 件"
        ),
    }
}
