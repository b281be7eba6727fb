//! The figures the dashboard shows, each read with one aggregate or one bounded query so the page
//! stays fast with hundreds of thousands of findings.

use std::collections::BTreeMap;

use relayguard_core::Severity;

use super::findings::{FINDING_COLUMNS, finding_from_row};
use super::{FindingRow, Store, SweepRow, get_i64, get_str};
use crate::error::Result;

/// Seconds in a day (the history's bucket).
pub const DAY: i64 = 86_400;

/// How many findings of each severity were open at the end of one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayCounts {
    /// The day's start (Unix seconds, UTC midnight).
    pub day: i64,
    /// Open findings at the day's end, indexed by [`Severity::rank`] (info … critical).
    pub open: [i64; 5],
}

/// How long fixing took for one group of resolved findings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixTime {
    /// The network block (CIDR, or "no network block") or the finding kind.
    pub group: String,
    /// Resolved findings in the group.
    pub resolved: usize,
    /// Median time from first seen to resolved (seconds).
    pub median: i64,
    /// 90th percentile of the same (seconds).
    pub p90: i64,
}

/// The newest sweep of one vantage point and how much of its target it covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastSweep {
    /// The sweep.
    pub sweep: SweepRow,
    /// Addresses × ports its targets named (None when a target is a host name or too large).
    pub planned: Option<i64>,
}

/// An enrolled host whose agent has been silent for longer than its usual interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SilentAgent {
    /// The host.
    pub address: String,
    /// The host name its last report gave.
    pub hostname: String,
    /// When its last report came in (Unix seconds).
    pub last: i64,
    /// Its usual interval between reports (seconds).
    pub interval: i64,
}

/// Everything the dashboard shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dashboard {
    /// Open findings per severity at the end of each of the last days, oldest first.
    pub history: Vec<DayCounts>,
    /// Time to fix per network block.
    pub fix_by_network: Vec<FixTime>,
    /// Time to fix per finding kind.
    pub fix_by_kind: Vec<FixTime>,
    /// The oldest open critical findings, oldest first.
    pub oldest_critical: Vec<FindingRow>,
    /// The newest sweep of each vantage point.
    pub vantages: Vec<LastSweep>,
    /// Agents overdue for a report.
    pub silent_agents: Vec<SilentAgent>,
}

/// The agent's timer runs every six hours (agent/dist/relayguard-agent.timer): the interval of a
/// host with too few reports to tell its own.
pub const DEFAULT_AGENT_INTERVAL: i64 = 6 * 3600;
/// Slack past the interval before an agent counts as silent (the timer's random delay is 30
/// minutes; a report may wait in the agent's spool for the next run).
pub const AGENT_GRACE: i64 = 3600;

/// The value at quantile `q` (0–1) of sorted `v` (nearest rank).
pub fn quantile(v: &[i64], q: f64) -> i64 {
    if v.is_empty() {
        return 0;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

fn summarize(groups: BTreeMap<String, Vec<i64>>) -> Vec<FixTime> {
    groups
        .into_iter()
        .map(|(group, mut v)| {
            v.sort_unstable();
            FixTime {
                group,
                resolved: v.len(),
                median: quantile(&v, 0.5),
                p90: quantile(&v, 0.9),
            }
        })
        .collect()
}

/// Addresses × ports a sweep's targets name, when every target is an address, block or range.
fn planned_probes(s: &SweepRow) -> Option<i64> {
    let mut addresses: i64 = 0;
    for t in &s.targets {
        let t = t.trim();
        let n: i64 = if let Ok(net) = t.parse::<ipnet::IpNet>() {
            let bits = u32::from(net.max_prefix_len() - net.prefix_len());
            if bits > 40 {
                return None;
            }
            1i64 << bits
        } else if t.parse::<std::net::IpAddr>().is_ok() {
            1
        } else if let Some((a, b)) = t.split_once('-') {
            match (a.trim().parse(), b.trim().parse()) {
                (Ok(std::net::IpAddr::V4(a)), Ok(std::net::IpAddr::V4(b))) => {
                    i64::from(u32::from(b)) - i64::from(u32::from(a)) + 1
                }
                _ => return None,
            }
        } else {
            return None;
        };
        addresses = addresses.checked_add(n.max(0))?;
    }
    addresses.checked_mul(s.ports.len().max(1) as i64)
}

impl Store {
    /// Reads the dashboard's figures as of `now` (Unix seconds), with `days` days of history.
    /// The parts are independent reads, run side by side on the pool's connections.
    pub async fn dashboard(&self, now: i64, days: i64) -> Result<Dashboard> {
        let nets = self.list_networks().await?;
        let (history, (fix_by_network, fix_by_kind), oldest_critical, vantages, silent_agents) = tokio::try_join!(
            self.history(now, days),
            self.fix_times(now, &nets),
            self.oldest_critical(&nets),
            self.last_sweeps(),
            self.silent_agents(now),
        )?;
        Ok(Dashboard {
            history,
            fix_by_network,
            fix_by_kind,
            oldest_critical,
            vantages,
            silent_agents,
        })
    }

    /// Open findings per severity at the end of each of the last `days` days.
    async fn history(&self, now: i64, days: i64) -> Result<Vec<DayCounts>> {
        let pool = self.pool();
        let today = now.div_euclid(DAY);
        let first = today - days + 1;

        // Open at the end of day d = opened on or before d − resolved on or before d. A finding
        // reopened after a resolution counts from its first sighting: the store keeps one
        // first-seen and one resolved time per finding, not every transition.
        let mut opened = vec![[0i64; 5]; days.max(0) as usize];
        let mut resolved = opened.clone();
        let mut before_opened = [0i64; 5];
        let mut before_resolved = [0i64; 5];
        for (col, extra, into_days, into_before) in [
            ("first_seen", "", &mut opened, &mut before_opened),
            (
                "resolved_at",
                " WHERE resolved_at IS NOT NULL",
                &mut resolved,
                &mut before_resolved,
            ),
        ] {
            let sql = format!(
                "SELECT severity_rank, {col} / {DAY} AS d, COUNT(*) AS n FROM findings{extra} GROUP BY severity_rank, {col} / {DAY}"
            );
            for r in sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_all(pool)
                .await?
            {
                let rank = get_i64(&r, "severity_rank")?.clamp(0, 4) as usize;
                let (d, n) = (get_i64(&r, "d")?, get_i64(&r, "n")?);
                if d < first {
                    into_before[rank] += n;
                } else if d <= today {
                    into_days[(d - first) as usize][rank] += n;
                }
            }
        }
        let mut history = Vec::with_capacity(opened.len());
        let (mut o, mut c) = (before_opened, before_resolved);
        for (i, (op, re)) in opened.iter().zip(&resolved).enumerate() {
            let mut open = [0i64; 5];
            for s in 0..5 {
                o[s] += op[s];
                c[s] += re[s];
                open[s] = (o[s] - c[s]).max(0);
            }
            history.push(DayCounts {
                day: (first + i as i64) * DAY,
                open,
            });
        }
        Ok(history)
    }

    /// Time to fix per network block and per kind, over the findings resolved in the last year.
    async fn fix_times(
        &self,
        now: i64,
        nets: &[crate::model::Network],
    ) -> Result<(Vec<FixTime>, Vec<FixTime>)> {
        let rows = sqlx::query(
            "SELECT address, kind, resolved_at - first_seen AS dt FROM findings \
             WHERE status = 'resolved' AND resolved_at >= $1",
        )
        .bind(now - 365 * DAY)
        .fetch_all(self.pool())
        .await?;
        let blocks = super::networks::Blocks::new(nets);
        // Many resolved findings share an address: each is looked up once.
        let mut block_of: std::collections::HashMap<String, String> = Default::default();
        let (mut by_net, mut by_kind) = (BTreeMap::new(), BTreeMap::new());
        for r in &rows {
            let dt = get_i64(r, "dt")?.max(0);
            let address = get_str(r, "address")?;
            let net = block_of
                .entry(address)
                .or_insert_with_key(|a| {
                    a.parse()
                        .ok()
                        .and_then(|ip| blocks.most_specific(ip))
                        .map_or_else(|| "no network block".to_string(), |n| n.cidr.clone())
                })
                .clone();
            by_net.entry(net).or_insert_with(Vec::new).push(dt);
            by_kind
                .entry(get_str(r, "kind")?)
                .or_insert_with(Vec::new)
                .push(dt);
        }
        Ok((summarize(by_net), summarize(by_kind)))
    }

    /// The ten oldest open critical findings, with their contacts.
    async fn oldest_critical(&self, nets: &[crate::model::Network]) -> Result<Vec<FindingRow>> {
        let sql = format!(
            "SELECT {FINDING_COLUMNS} FROM findings WHERE status = 'open' AND severity_rank = $1 \
             ORDER BY first_seen, id LIMIT 10"
        );
        let mut oldest = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(Severity::Critical.rank())
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(finding_from_row)
            .collect::<Result<Vec<_>>>()?;
        self.attach_contacts(&mut oldest, nets).await?;
        Ok(oldest)
    }

    /// The newest sweep of each vantage point with its planned probes.
    async fn last_sweeps(&self) -> Result<Vec<LastSweep>> {
        let mut vantages = Vec::new();
        for v in self.latest_sweep_ids().await? {
            if let Some(sweep) = self.get_sweep(v).await? {
                vantages.push(LastSweep {
                    planned: planned_probes(&sweep),
                    sweep,
                });
            }
        }
        Ok(vantages)
    }

    /// The id of the newest sweep of each vantage point, by vantage name.
    async fn latest_sweep_ids(&self) -> Result<Vec<i64>> {
        sqlx::query("SELECT MAX(id) AS id FROM sweeps GROUP BY vantage ORDER BY vantage")
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| get_i64(r, "id"))
            .collect()
    }

    /// Enrolled hosts whose agent's last report is older than its usual interval plus
    /// [`AGENT_GRACE`]. The usual interval is the median gap between its last ten reports, or
    /// [`DEFAULT_AGENT_INTERVAL`] with fewer than three.
    pub async fn silent_agents(&self, now: i64) -> Result<Vec<SilentAgent>> {
        let rows = sqlx::query(
            "SELECT t.address, r.received_at, r.hostname FROM agent_tokens t LEFT JOIN \
             (SELECT address, received_at, hostname, \
              ROW_NUMBER() OVER (PARTITION BY address ORDER BY received_at DESC) AS rn FROM agent_reports) r \
             ON r.address = t.address AND r.rn <= 10 ORDER BY t.address, r.received_at DESC",
        )
        .fetch_all(self.pool())
        .await?;
        let mut per: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
        for r in &rows {
            let e = per.entry(get_str(r, "address")?).or_default();
            if let (Some(at), Some(h)) = (
                sqlx::Row::try_get::<Option<i64>, _>(r, "received_at")?,
                sqlx::Row::try_get::<Option<String>, _>(r, "hostname")?,
            ) {
                e.push((at, h));
            }
        }
        let mut out = Vec::new();
        for (address, reports) in per {
            // Enrolled but never reported: silent since enrollment, which the tokens table
            // knows; shown with last = 0 so the page says "never".
            let Some((last, hostname)) = reports.first().cloned() else {
                out.push(SilentAgent {
                    address,
                    hostname: String::new(),
                    last: 0,
                    interval: DEFAULT_AGENT_INTERVAL,
                });
                continue;
            };
            let mut gaps: Vec<i64> = reports.windows(2).map(|w| w[0].0 - w[1].0).collect();
            gaps.sort_unstable();
            let interval = if gaps.len() >= 2 {
                quantile(&gaps, 0.5).max(60)
            } else {
                DEFAULT_AGENT_INTERVAL
            };
            if now - last > interval + AGENT_GRACE {
                out.push(SilentAgent {
                    address,
                    hostname,
                    last,
                    interval,
                });
            }
        }
        out.sort_by_key(|a| a.last);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_take_the_nearest_rank() {
        let v: Vec<i64> = (1..=10).collect();
        assert_eq!(quantile(&v, 0.5), 5);
        assert_eq!(quantile(&v, 0.9), 9);
        assert_eq!(quantile(&[7], 0.9), 7);
        assert_eq!(quantile(&[], 0.5), 0);
    }
}
