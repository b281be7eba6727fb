//! What `relayguard sweep` hands to a registry: the sweep's description and its results, in
//! process or as the body of `POST /api/v1/sweeps`.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::scan::HostResult;

/// What a sweep was: where from, what it aimed at, when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepMeta {
    /// Name of the vantage point (e.g. `campus-core`, `outside-vps`).
    pub vantage: String,
    /// The targets as given: CIDRs, addresses, `A-B` ranges or host names.
    #[serde(default)]
    pub targets: Vec<String>,
    /// Ports probed; empty means "the ports present in the results, else 25".
    #[serde(default)]
    pub ports: Vec<u16>,
    /// Start, seconds since the Unix epoch.
    pub started_at: i64,
    /// End, seconds since the Unix epoch.
    pub finished_at: i64,
}

/// The body of `POST /api/v1/sweeps`.
///
/// Borrowed on the sending side (a /16 with transcripts is tens of megabytes, not worth a copy),
/// owned on the receiving side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepUpload<'a> {
    /// The sweep's description.
    pub meta: Cow<'a, SweepMeta>,
    /// Every host result of the sweep.
    #[serde(default)]
    pub results: Cow<'a, [HostResult]>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_round_trips_and_refuses_unknown_fields() {
        let meta = SweepMeta {
            vantage: "campus".into(),
            targets: vec!["192.0.2.0/24".into()],
            ports: vec![25],
            started_at: 1,
            finished_at: 2,
        };
        let results = [HostResult::unreachable(
            "192.0.2.1".parse().unwrap(),
            25,
            crate::scan::PortState::Closed,
        )];
        let sent = SweepUpload {
            meta: Cow::Borrowed(&meta),
            results: Cow::Borrowed(&results),
        };
        let text = serde_json::to_string(&sent).unwrap();
        let got: SweepUpload<'static> = serde_json::from_str(&text).unwrap();
        assert_eq!(got, sent);
        let got: SweepUpload<'static> =
            serde_json::from_str(r#"{"meta":{"vantage":"v","started_at":1,"finished_at":2}}"#)
                .unwrap();
        assert!(got.results.is_empty());
        assert!(
            serde_json::from_str::<SweepUpload<'static>>(
                r#"{"meta":{"vantage":"v","started_at":1,"finished_at":2},"extra":1}"#
            )
            .is_err()
        );
    }
}
