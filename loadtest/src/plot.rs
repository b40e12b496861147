//! SVG plots for the bench: loss and p99 latency against concurrent calls.
//!
//! Two stacked panels share the x axis (concurrent calls): loss in percent
//! on top, p99 one-way latency in milliseconds below. Each panel has one
//! line with markers per series (typically "gateway pair" and "bare
//! forwarder pair"), a dashed line at its threshold (0.1 % loss, the
//! latency limit given), axis ticks and labels, and a legend.
//!
//! Drawn with `plotters`' SVG backend only: it writes text as SVG `<text>`
//! elements and lays it out with its built-in estimate, so no font file is
//! read and nothing depends on the fonts installed.
//!
//! Bad input never panics: points whose value is not finite are left out,
//! negative values count as zero, and an empty plot still renders (with
//! empty axes).

use std::io;
use std::path::Path;

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

/// The loss threshold drawn on the loss panel, in percent.
pub const LOSS_LIMIT_PERCENT: f64 = 0.1;

/// Canvas size in pixels.
const SIZE: (u32, u32) = (960, 900);

/// Values above this are drawn at this (keeps the axis maths finite).
const MAX_VALUE: f64 = 1e9;

/// One measured step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Concurrent calls at this step.
    pub calls: u32,
    /// Lost share of the voice frames, 0 to 1 (drawn in percent).
    pub loss_ratio: f64,
    /// 99th percentile one-way latency in milliseconds.
    pub p99_ms: f64,
}

/// One line on both panels.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The legend's name for it.
    pub name: String,
    /// Its steps (drawn in order of calls).
    pub points: Vec<Point>,
}

/// Everything one plot shows.
#[derive(Debug, Clone, PartialEq)]
pub struct PlotData {
    /// The title line above both panels.
    pub title: String,
    /// The latency threshold, drawn dashed on the latency panel; left out
    /// when not a positive number.
    pub latency_limit_ms: f64,
    /// The lines.
    pub series: Vec<Series>,
}

/// Line colours, in series order (then repeated).
const COLOURS: [RGBColor; 5] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

const THRESHOLD: RGBColor = RGBColor(214, 39, 40);

/// One panel: what it shows and how.
struct Panel {
    caption: &'static str,
    y_desc: &'static str,
    value: fn(&Point) -> f64,
    threshold: Option<f64>,
    threshold_label: String,
}

/// The plot as an SVG document.
pub fn render_svg(data: &PlotData) -> String {
    let mut svg = String::new();
    let drawn = {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        let r = draw(&root, data);
        // Closes every open tag; dropping the backend would do it too.
        let p = root.present().map_err(|e| e.to_string());
        r.and(p)
    };
    match drawn {
        Ok(()) => svg,
        Err(e) => fallback_svg(&format!("plot failed: {e}")),
    }
}

/// Writes [`render_svg`]'s document to `path`.
pub fn write_svg(path: &Path, data: &PlotData) -> io::Result<()> {
    std::fs::write(path, render_svg(data))
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

fn draw(root: &Area<'_>, data: &PlotData) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<io::Error>| e.to_string();
    root.fill(&WHITE).map_err(err)?;
    let body = root
        .titled(&clean(&data.title), ("sans-serif", 20))
        .map_err(err)?;
    let series: Vec<(String, Vec<Point>)> = data
        .series
        .iter()
        .map(|s| {
            let mut points = s.points.clone();
            points.sort_by_key(|p| p.calls);
            (clean(&s.name), points)
        })
        .collect();
    let latency_limit = (data.latency_limit_ms.is_finite() && data.latency_limit_ms > 0.0)
        .then_some(data.latency_limit_ms.min(MAX_VALUE));
    let panels = [
        Panel {
            caption: "Loss",
            y_desc: "loss (%)",
            value: |p| p.loss_ratio * 100.0,
            threshold: Some(LOSS_LIMIT_PERCENT),
            threshold_label: format!("{LOSS_LIMIT_PERCENT} % loss limit"),
        },
        Panel {
            caption: "p99 one-way latency",
            y_desc: "p99 latency (ms)",
            value: |p| p.p99_ms,
            threshold: latency_limit,
            threshold_label: format!("{} ms limit", data.latency_limit_ms),
        },
    ];
    let x = x_range(&series);
    for (area, panel) in body.split_evenly((2, 1)).iter().zip(&panels) {
        draw_panel(area, panel, x, &series).map_err(err)?;
    }
    Ok(())
}

fn draw_panel(
    area: &Area<'_>,
    panel: &Panel,
    (x0, x1): (u32, u32),
    series: &[(String, Vec<Point>)],
) -> Result<(), DrawingAreaErrorKind<io::Error>> {
    let values = |pts: &[Point]| -> Vec<(u32, f64)> {
        pts.iter()
            .filter_map(|p| {
                let v = (panel.value)(p);
                v.is_finite().then(|| (p.calls, v.clamp(0.0, MAX_VALUE)))
            })
            .collect()
    };
    let top = series
        .iter()
        .flat_map(|(_, pts)| values(pts))
        .map(|(_, v)| v)
        .chain(panel.threshold)
        .fold(0.0, f64::max);
    let top = if top > 0.0 { top * 1.15 } else { 1.0 };
    let decimals = (-(top / 5.0).log10()).ceil().clamp(0.0, 4.0) as usize;

    let mut chart = ChartBuilder::on(area)
        .caption(panel.caption, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, 0.0..top)?;
    chart
        .configure_mesh()
        .x_desc("concurrent calls")
        .y_desc(panel.y_desc)
        .y_label_formatter(&|v| format!("{v:.decimals$}"))
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 14))
        .light_line_style(RGBColor(240, 240, 240))
        .bold_line_style(RGBColor(215, 215, 215))
        .draw()?;

    for (i, (name, pts)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let line = colour.stroke_width(2);
        // Markers at the steps: filled dots for the first series, rings
        // for the second, and so on, so the lines differ in grey too.
        let marker = if i % 2 == 0 {
            colour.filled()
        } else {
            colour.stroke_width(2)
        };
        let pts = values(pts);
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), line))?
            .label(name.as_str())
            .legend(move |(x, y)| {
                // Coordinates relative to (x, y): a line with the marker.
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(0, 0), (24, 0)], line)
                    + Circle::new((12, 0), 4, marker)
            });
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, marker)))?;
    }

    if let Some(t) = panel.threshold {
        let style = THRESHOLD.stroke_width(1);
        chart
            .draw_series(DashedLineSeries::new(vec![(x0, t), (x1, t)], 8, 5, style))?
            .label(panel.threshold_label.as_str())
            .legend(move |(x, y)| DashedPathElement::new(vec![(x, y), (x + 24, y)], 6, 3, style));
    }

    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 13))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(160, 160, 160))
        .draw()?;
    Ok(())
}

/// The x axis: every step's calls, padded a little on both sides.
fn x_range(series: &[(String, Vec<Point>)]) -> (u32, u32) {
    let calls = series
        .iter()
        .flat_map(|(_, pts)| pts.iter().map(|p| p.calls));
    let (lo, hi) = calls.fold((u32::MAX, 0), |(lo, hi), c| (lo.min(c), hi.max(c)));
    if lo > hi {
        return (0, 1);
    }
    let pad = ((hi - lo) / 25).max(1);
    (lo.saturating_sub(pad), hi.saturating_add(pad))
}

/// Text without the control characters XML does not allow.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A minimal document that says why there is no plot.
fn fallback_svg(message: &str) -> String {
    let mut text = String::new();
    for c in clean(message).chars() {
        match c {
            '<' => text.push_str("&lt;"),
            '>' => text.push_str("&gt;"),
            '&' => text.push_str("&amp;"),
            c => text.push(c),
        }
    }
    format!(
        "<svg width=\"{w}\" height=\"80\" viewBox=\"0 0 {w} 80\" \
         xmlns=\"http://www.w3.org/2000/svg\">\n\
         <text x=\"10\" y=\"40\" font-family=\"sans-serif\" font-size=\"14\">{text}</text>\n</svg>\n",
        w = SIZE.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PlotData {
        let step = |calls, loss_ratio, p99_ms| Point {
            calls,
            loss_ratio,
            p99_ms,
        };
        PlotData {
            title: "Bench: 2 cores, G.711 20 ms <loopback> & friends".into(),
            latency_limit_ms: 30.0,
            series: vec![
                Series {
                    name: "gateway pair".into(),
                    points: vec![
                        step(500, 0.0, 2.1),
                        step(1000, 0.0002, 3.5),
                        step(2000, 0.004, 45.0),
                    ],
                },
                Series {
                    name: "bare forwarder pair".into(),
                    points: vec![
                        step(500, 0.0, 1.0),
                        step(1000, 0.0, 1.4),
                        step(2000, 0.0001, 2.2),
                    ],
                },
            ],
        }
    }

    /// Checks the document is well-formed enough: every tag closes in
    /// order, attributes are quoted, and `&` only starts entities. Returns
    /// the element names in document order.
    fn check_xml(doc: &str) -> Vec<String> {
        let mut stack: Vec<String> = Vec::new();
        let mut seen = Vec::new();
        let mut rest = doc;
        while let Some(open) = rest.find('<') {
            check_text(&rest[..open]);
            let close = rest[open..].find('>').expect("unclosed tag") + open;
            let tag = &rest[open + 1..close];
            rest = &rest[close + 1..];
            if tag.starts_with('?') || tag.starts_with('!') {
                continue;
            }
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(
                    stack.pop().as_deref(),
                    Some(name.trim()),
                    "mismatched </{name}>"
                );
                continue;
            }
            let self_closing = tag.ends_with('/');
            let tag = tag.trim_end_matches('/');
            let name = tag.split_whitespace().next().expect("empty tag").to_owned();
            assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
            assert_eq!(
                tag.matches('"').count() % 2,
                0,
                "unbalanced quotes in <{tag}>"
            );
            check_text(tag);
            seen.push(name.clone());
            if !self_closing {
                stack.push(name);
            }
        }
        check_text(rest);
        assert!(stack.is_empty(), "unclosed: {stack:?}");
        assert_eq!(seen.first().map(String::as_str), Some("svg"));
        seen
    }

    fn check_text(text: &str) {
        for (i, _) in text.match_indices('&') {
            let entity = &text[i..text[i..].find(';').map_or(text.len(), |e| i + e + 1)];
            assert!(
                ["&lt;", "&gt;", "&amp;", "&quot;", "&apos;"].contains(&entity)
                    || entity.starts_with("&#"),
                "bad entity {entity:?}"
            );
        }
        assert!(!text.contains('<'));
        assert!(!text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t'));
    }

    #[test]
    fn renders_both_panels_and_series() {
        let doc = render_svg(&sample());
        let tags = check_xml(&doc);
        for name in ["gateway pair", "bare forwarder pair"] {
            // Once per panel's legend.
            assert_eq!(doc.matches(name).count(), 2, "{name}");
        }
        for name in ["0.1 % loss limit", "30 ms limit"] {
            assert_eq!(doc.matches(name).count(), 1, "{name}");
        }
        assert!(doc.contains("&lt;loopback&gt; &amp; friends"));
        assert!(doc.contains("concurrent calls") && doc.contains("p99 latency (ms)"));
        // A line per series and panel, plus legend samples and dashes.
        let lines = tags
            .iter()
            .filter(|t| *t == "polyline" || *t == "path")
            .count();
        assert!(lines >= 4, "{lines} lines");
        assert!(tags.iter().filter(|t| *t == "circle").count() >= 6);
        assert!(tags.iter().filter(|t| *t == "text").count() > 10);
    }

    #[test]
    fn odd_input_never_panics() {
        let step = |calls, loss_ratio, p99_ms| Point {
            calls,
            loss_ratio,
            p99_ms,
        };
        let cases = [
            vec![],
            vec![Series {
                name: "empty".into(),
                points: vec![],
            }],
            vec![Series {
                name: "one".into(),
                points: vec![step(100, 0.0, 0.0)],
            }],
            vec![Series {
                name: "nan\u{0}and\tinf".into(),
                points: vec![
                    step(0, f64::NAN, f64::INFINITY),
                    step(u32::MAX, f64::NEG_INFINITY, -5.0),
                    step(7, 1e300, f64::MAX),
                    step(7, -1.0, f64::NAN),
                ],
            }],
        ];
        for series in cases {
            for limit in [30.0, f64::NAN, 0.0, -1.0, f64::INFINITY, 1e300] {
                let data = PlotData {
                    title: String::new(),
                    latency_limit_ms: limit,
                    series: series.clone(),
                };
                check_xml(&render_svg(&data));
            }
        }
    }

    #[test]
    fn writes_a_file() {
        let path = std::env::temp_dir().join(format!("iax2-plot-{}.svg", std::process::id()));
        write_svg(&path, &sample()).unwrap();
        let doc = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        check_xml(&doc);
    }
}
