//! Charts for the dashboard, drawn on the server as SVG with plotters (no script in the browser).
//!
//! Made to survive a black-and-white printout: every series has its own marker shape and line
//! width as well as its colour, a legend names them, and both axes say what they count. Only
//! text the registry makes itself (severity names, dates, numbers) goes into a chart.

use plotters::prelude::*;

use crate::store::dashboard::{DAY, DayCounts};

/// One severity's look: name, colour, line width, marker.
struct SeriesStyle {
    name: &'static str,
    rank: usize,
    color: RGBColor,
    width: u32,
    marker: Marker,
}

#[derive(Clone, Copy)]
enum Marker {
    FilledCircle,
    Triangle,
    Cross,
    Square,
    HollowCircle,
}

/// Worst first, so the legend reads in order of urgency.
const SERIES: [SeriesStyle; 5] = [
    SeriesStyle {
        name: "critical",
        rank: 4,
        color: RGBColor(170, 0, 0),
        width: 3,
        marker: Marker::FilledCircle,
    },
    SeriesStyle {
        name: "high",
        rank: 3,
        color: RGBColor(210, 90, 0),
        width: 2,
        marker: Marker::Triangle,
    },
    SeriesStyle {
        name: "medium",
        rank: 2,
        color: RGBColor(150, 120, 0),
        width: 2,
        marker: Marker::Cross,
    },
    SeriesStyle {
        name: "low",
        rank: 1,
        color: RGBColor(30, 80, 170),
        width: 1,
        marker: Marker::Square,
    },
    SeriesStyle {
        name: "info",
        rank: 0,
        color: RGBColor(90, 90, 90),
        width: 1,
        marker: Marker::HollowCircle,
    },
];

/// A day's start as `MM-DD`.
fn day_label(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .map(|d| format!("{:02}-{:02}", u8::from(d.month()), d.day()))
        .unwrap_or_default()
}

/// Open findings per severity over `history` (one point per day and severity) as an SVG
/// document. An empty history gives a chart with empty axes.
pub fn open_findings(history: &[DayCounts]) -> String {
    let mut svg = String::new();
    // Drawing into a String cannot fail for I/O reasons; a layout error leaves a blank chart,
    // which the page's table below still explains.
    let _ = draw_open_findings(&mut svg, history);
    svg
}

fn draw_open_findings(
    svg: &mut String,
    history: &[DayCounts],
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::with_string(svg, (960, 380)).into_drawing_area();
    root.fill(&WHITE)?;
    let first = history.first().map_or(0, |d| d.day);
    let last = history.last().map_or(DAY, |d| d.day).max(first + DAY);
    let top = history
        .iter()
        .flat_map(|d| d.open.iter().copied())
        .max()
        .unwrap_or(0);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Open findings by severity, end of each day (UTC)",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(first..last, 0i64..(top + top / 10 + 1))?;
    chart
        .configure_mesh()
        .x_desc("day")
        .y_desc("open findings")
        .x_labels(10)
        .y_labels(8)
        .x_label_formatter(&|t| day_label(*t))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;
    for s in &SERIES {
        let points: Vec<(i64, i64)> = history.iter().map(|d| (d.day, d.open[s.rank])).collect();
        let (color, kind, width) = (s.color, s.marker, s.width);
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(width)))?
            .label(s.name)
            .legend(move |(x, y)| {
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(-8, 0), (8, 0)], color.stroke_width(width))
                    + shape(kind, color)
            });
        // Markers on every point, so the series tell apart without colour.
        chart.draw_series(
            points
                .into_iter()
                .map(move |p| EmptyElement::at(p) + shape(kind, color)),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()?;
    root.present()?;
    Ok(())
}

/// A series' marker, in pixels around the point it marks (the same shape in the legend).
fn shape<DB: DrawingBackend>(kind: Marker, color: RGBColor) -> DynElement<'static, DB, (i32, i32)> {
    match kind {
        Marker::FilledCircle => Circle::new((0, 0), 3, color.filled()).into_dyn(),
        Marker::HollowCircle => Circle::new((0, 0), 3, color.stroke_width(1)).into_dyn(),
        Marker::Triangle => TriangleMarker::new((0, 0), 4, color.filled()).into_dyn(),
        Marker::Cross => Cross::new((0, 0), 3, color.stroke_width(2)).into_dyn(),
        Marker::Square => Rectangle::new([(-3, -3), (3, 3)], color.filled()).into_dyn(),
    }
}
