//! The queue health history of a mail server, drawn on its host page: the queued messages and
//! the bounces of its last agent reports, as a small SVG chart (plotters, no JavaScript).
//!
//! The bounces of a report are what `bounce-burst` compares with its threshold: the larger of
//! the null-sender messages queued and the bounces generated since the previous report. The
//! chart has no text of its own (plotters would need a font backend for that). The scale and the
//! time span are written in the HTML around it.

use maud::{Markup, PreEscaped, html};
use plotters::prelude::*;
use relayguard_core::agent_report::QueueHealth;

use crate::store::AgentReportRow;

/// Chart size in pixels.
const SIZE: (u32, u32) = (480, 160);
/// Colours of the two lines: queued messages, bounces.
const QUEUED: RGBColor = RGBColor(0x1f, 0x5f, 0xbf);
const BOUNCES: RGBColor = RGBColor(0xc0, 0x30, 0x20);

/// One report's reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthPoint {
    /// When the agent made the report (Unix seconds).
    pub at: i64,
    /// Messages queued.
    pub queued: u64,
    /// Bounces: null-sender messages queued or generated since the previous report, the larger.
    pub bounces: u64,
}

/// The readings of the reports that carry queue health, oldest first (reports come newest
/// first from the store).
pub fn points(reports: &[AgentReportRow]) -> Vec<HealthPoint> {
    let mut p: Vec<HealthPoint> = reports
        .iter()
        .filter_map(|r| {
            let q: QueueHealth = serde_json::from_value(r.report.get("queue")?.clone()).ok()?;
            Some(HealthPoint {
                at: r.generated_at,
                queued: q.messages,
                bounces: q.bounces_since_last.unwrap_or(0).max(q.null_sender),
            })
        })
        .collect();
    p.sort_by_key(|p| p.at);
    p
}

/// The chart of `points` (oldest first) as an SVG document.
pub fn svg(points: &[HealthPoint]) -> Result<String, String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let first = points.first().map_or(0, |p| p.at);
        let last = points.last().map_or(1, |p| p.at).max(first + 1);
        let top = points
            .iter()
            .map(|p| p.queued.max(p.bounces))
            .max()
            .unwrap_or(0)
            .max(1);
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .build_cartesian_2d(first..last, 0u64..top + top / 10)
            .map_err(|e| e.to_string())?;
        for (colour, value) in [
            (
                QUEUED,
                (|p: &HealthPoint| p.queued) as fn(&HealthPoint) -> u64,
            ),
            (BOUNCES, |p: &HealthPoint| p.bounces),
        ] {
            chart
                .draw_series(LineSeries::new(
                    points.iter().map(|p| (p.at, value(p))),
                    colour.stroke_width(2),
                ))
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// A report time as the pages write times (RFC 3339, UTC).
fn when(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

/// The host page's section: the chart with its scale and span, or nothing when no report
/// carried queue health.
pub fn section(reports: &[AgentReportRow]) -> Markup {
    let p = points(reports);
    let (Some(first), Some(last)) = (p.first(), p.last()) else {
        return html! {};
    };
    let top = p.iter().map(|p| p.queued.max(p.bounces)).max().unwrap_or(0);
    match svg(&p) {
        Ok(svg) => html! {
            h3 { "Queue health" }
            div class="health-chart" { (PreEscaped(svg)) }
            p {
                span style="color:#1f5fbf" { "■ queued messages" } " "
                span style="color:#c03020" { "■ bounces" } " — "
                (p.len()) " reports from " (when(first.at)) " to "
                (when(last.at)) "; highest " (top) "."
            }
        },
        Err(e) => html! { p { "Queue health chart unavailable: " (e) } },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quick_xml::Reader;
    use quick_xml::events::Event;

    fn row(at: i64, queue: Option<(u64, u64, Option<u64>)>) -> AgentReportRow {
        let queue = queue.map(|(messages, null_sender, since)| {
            serde_json::json!({
                "mta": "postfix", "source": "postqueue -j", "queues": {"deferred": messages},
                "messages": messages, "null_sender": null_sender, "bounces_since_last": since,
            })
        });
        AgentReportRow {
            report_id: format!("r{at}"),
            address: "10.0.0.25".into(),
            received_at: at,
            generated_at: at,
            hostname: "mx".into(),
            agent_version: "0.1.0".into(),
            mta_enabled: true,
            mta_listening: true,
            actions: 0,
            report: serde_json::json!({ "queue": queue }),
        }
    }

    /// The `points` attribute of every polyline, as lists of (x, y).
    fn polylines(svg: &str) -> Vec<Vec<(f64, f64)>> {
        let mut r = Reader::from_str(svg);
        let mut lines = Vec::new();
        loop {
            match r.read_event().expect("well-formed XML") {
                Event::Eof => break,
                Event::Start(e) | Event::Empty(e) if e.name().into_inner() == "polyline" => {
                    let a = e
                        .try_get_attribute("points")
                        .unwrap()
                        .expect("points")
                        .value
                        .into_owned();
                    lines.push(
                        a.split_whitespace()
                            .map(|xy| {
                                let (x, y) = xy.split_once(',').unwrap();
                                (x.parse().unwrap(), y.parse().unwrap())
                            })
                            .collect(),
                    );
                }
                _ => {}
            }
        }
        lines
    }

    #[test]
    fn a_line_per_series_with_a_point_per_report() {
        // Newest first, as the store lists them; one report without queue health.
        let reports = [
            row(4000, Some((900, 20, Some(150)))),
            row(3000, None),
            row(2000, Some((600, 120, Some(3)))),
            row(1000, Some((10, 0, None))),
        ];
        let p = points(&reports);
        assert_eq!(
            p,
            [
                HealthPoint {
                    at: 1000,
                    queued: 10,
                    bounces: 0
                },
                HealthPoint {
                    at: 2000,
                    queued: 600,
                    bounces: 120
                },
                HealthPoint {
                    at: 4000,
                    queued: 900,
                    bounces: 150
                },
            ]
        );
        let svg = svg(&p).unwrap();
        let lines = polylines(&svg);
        assert_eq!(lines.len(), 2, "{svg}");
        for l in &lines {
            assert_eq!(l.len(), 3, "{svg}");
            // Time runs left to right.
            assert!(l.windows(2).all(|w| w[0].0 < w[1].0), "{l:?}");
        }
        // The queue line is higher (smaller y) than the bounce line at its peak.
        assert!(lines[0][2].1 < lines[1][2].1, "{lines:?}");
        // SVG y grows downwards: 900 queued is drawn above 10.
        assert!(lines[0][2].1 < lines[0][0].1);

        let html = section(&reports).into_string();
        assert!(html.contains("3 reports from"), "{html}");
        assert!(html.contains("highest 900"), "{html}");
    }

    #[test]
    fn one_report_and_none() {
        let one = [row(1000, Some((5, 1, None)))];
        let lines = polylines(&svg(&points(&one)).unwrap());
        assert!(lines.iter().all(|l| l.len() <= 1), "{lines:?}");
        assert_eq!(section(&[row(1000, None)]).into_string(), "");
    }
}
