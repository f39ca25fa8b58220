//! `helpline-load plot`: PNG charts from the JSON results (`--json FILE` of any scenario).
//!
//! - `relay-latency.png`: one-way latency (p50 solid, p99 dashed) against the offered rate, and acked
//!   msg/s against offered msg/s, one colour per target (bare relay, helpline on SQLite, on
//!   PostgreSQL, three nodes, Prosody), both axes logarithmic.
//! - `backends.png`: SQLite, PostgreSQL and three nodes side by side: relay one-way p50/p99/p99.9 at
//!   one rate (`--relay-rate`), routing start → offer p50/p99/p99.9 at one λ (`--routing-rate`).
//!
//! Text needs a TrueType font: `--font FILE`, else the first of [`FONT_CANDIDATES`] that exists.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use plotters::prelude::*;
use plotters::style::FontStyle;

/// Where fonts usually are on Debian (fonts-dejavu-core, fonts-liberation).
pub const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
];

#[derive(Debug, Clone)]
pub struct PlotOpts {
    /// The relay rate (msg/s) compared across backends.
    pub relay_rate: f64,
    /// The routing λ (contacts/s) compared across backends.
    pub routing_rate: f64,
    pub font: Option<PathBuf>,
}

impl Default for PlotOpts {
    fn default() -> Self {
        PlotOpts { relay_rate: 2000.0, routing_rate: 100.0, font: None }
    }
}

/// One step of one scenario against one target, as read from a JSON result.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub scenario: String,
    pub target: String,
    pub rate: f64,
    /// The main latency of the scenario (relay: one-way; routing: start->offer), ms.
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub throughput: f64,
}

/// The latency each scenario is plotted by.
fn main_latency(scenario: &str) -> Option<&'static str> {
    match scenario {
        "relay" => Some("one-way"),
        "routing" => Some("start->offer"),
        _ => None,
    }
}

/// The `relay` and `routing` steps of these result documents (`{"reports": [...]}`), in order.
/// A step whose (scenario, target, rate) was already seen in an earlier file or report is left out:
/// pass the files in the order you want to win (the goal run before the saturation run).
pub fn points(docs: &[serde_json::Value]) -> Vec<Point> {
    let mut out: Vec<Point> = Vec::new();
    for doc in docs {
        let Some(reports) = doc.get("reports").and_then(|r| r.as_array()) else { continue };
        for r in reports {
            let scenario = r.get("scenario").and_then(|s| s.as_str()).unwrap_or_default();
            let Some(lat_name) = main_latency(scenario) else { continue };
            let target = r.get("target").and_then(|s| s.as_str()).unwrap_or_default();
            let Some(rate) = r.pointer("/params/rate").and_then(|v| v.as_f64()) else { continue };
            let Some(l) = r.get("latencies").and_then(|l| l.get(lat_name)) else { continue };
            let f = |k: &str| l.get(k).and_then(|v| v.as_f64()).unwrap_or(0.0);
            if l.get("count").and_then(|c| c.as_u64()).unwrap_or(0) == 0 {
                continue;
            }
            let p = Point {
                scenario: scenario.into(),
                target: target.into(),
                rate,
                p50: f("p50_ms"),
                p99: f("p99_ms"),
                p999: f("p999_ms"),
                throughput: r.get("throughput").and_then(|v| v.as_f64()).unwrap_or(0.0),
            };
            if !out.iter().any(|o| o.scenario == p.scenario && o.target == p.target && o.rate == p.rate) {
                out.push(p);
            }
        }
    }
    out
}

/// Reads result files (each the `--json` output of one run).
pub fn read(files: &[PathBuf]) -> anyhow::Result<Vec<serde_json::Value>> {
    files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
            serde_json::from_str(&text).with_context(|| format!("{} is not a helpline-load JSON result", f.display()))
        })
        .collect()
}

fn load_font(opts: &PlotOpts) -> anyhow::Result<()> {
    let path = match &opts.font {
        Some(p) => p.clone(),
        None => FONT_CANDIDATES.iter().map(PathBuf::from).find(|p| p.exists()).ok_or_else(|| {
            anyhow!(
                "no TrueType font found (tried {}); pass --font FILE (Debian: apt-get install fonts-dejavu-core)",
                FONT_CANDIDATES.join(", ")
            )
        })?,
    };
    let bytes = std::fs::read(&path).with_context(|| format!("reading font {}", path.display()))?;
    // plotters keeps registered fonts for the life of the process.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow!("{} is not a TrueType/OpenType font", path.display()))?;
    Ok(())
}

const PALETTE: &[RGBColor] = &[
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0x17, 0xbe, 0xcf),
];

/// A stable colour per target, whatever else is in the chart.
fn colour(target: &str) -> RGBColor {
    let known = ["bare", "helpline (sqlite)", "helpline (postgres)", "helpline (postgres, 3 nodes)", "prosody (sqlite)"];
    let i = known.iter().position(|k| *k == target).unwrap_or_else(|| 5 + target.len() % 2);
    PALETTE[i % PALETTE.len()]
}

fn log_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::MAX, f64::MIN);
    for v in values.filter(|v| *v > 0.0 && v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo > hi {
        return (0.1, 10.0);
    }
    (lo / 1.6, hi * 1.6)
}

/// Axis numbers without a needless ".0": 0.5, 2, 1000.
fn fmt_num(v: f64) -> String {
    if v >= 10.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

type Err = Box<dyn std::error::Error + Send + Sync>;

fn draw_relay(path: &Path, pts: &[&Point]) -> Result<(), Err> {
    let root = BitMapBackend::new(path, (1500, 620)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(760);
    let mut targets: Vec<&str> = pts.iter().map(|p| p.target.as_str()).collect();
    targets.sort_unstable();
    targets.dedup();
    let (x0, x1) = log_range(pts.iter().map(|p| p.rate));

    let (y0, y1) = log_range(pts.iter().flat_map(|p| [p.p50, p.p99]));
    let mut c = ChartBuilder::on(&left)
        .caption("relay: one-way latency (p50 solid, p99 dashed)", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(48)
        .y_label_area_size(70)
        .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())?;
    c.configure_mesh()
        .x_labels(6)
        .x_label_formatter(&|v| fmt_num(*v))
        .y_label_formatter(&|v| fmt_num(*v))
        .x_desc("offered msg/s")
        .y_desc("ms")
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 17))
        .draw()?;
    for t in &targets {
        let mut series: Vec<&&Point> = pts.iter().filter(|p| p.target == *t).collect();
        series.sort_by(|a, b| a.rate.total_cmp(&b.rate));
        let col = colour(t);
        c.draw_series(LineSeries::new(series.iter().map(|p| (p.rate, p.p50)), col.stroke_width(3)))?
            .label(format!("{t} p50"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], col.stroke_width(3)));
        c.draw_series(series.iter().map(|p| Circle::new((p.rate, p.p50), 4, col.filled())))?;
        c.draw_series(DashedLineSeries::new(series.iter().map(|p| (p.rate, p.p99)), 8, 5, col.stroke_width(2)))?;
        c.draw_series(series.iter().map(|p| TriangleMarker::new((p.rate, p.p99), 5, col.filled())))?;
    }
    c.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()?;

    let (t0, t1) = log_range(pts.iter().map(|p| p.throughput).chain([x0 * 1.6, x1 / 1.6]));
    let (t0, t1) = (t0.min(x0), t1.max(x1));
    let mut c = ChartBuilder::on(&right)
        .caption("relay: acked msg/s against offered", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(48)
        .y_label_area_size(70)
        .build_cartesian_2d((t0..t1).log_scale(), (t0..t1).log_scale())?;
    c.configure_mesh()
        .x_labels(6)
        .y_labels(6)
        .x_label_formatter(&|v| fmt_num(*v))
        .y_label_formatter(&|v| fmt_num(*v))
        .x_desc("offered msg/s")
        .y_desc("acked msg/s")
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 17))
        .draw()?;
    c.draw_series(DashedLineSeries::new([(t0, t0), (t1, t1)], 4, 4, BLACK.mix(0.4).stroke_width(1)))?
        .label("acked = offered")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], BLACK.mix(0.4)));
    for t in &targets {
        let mut series: Vec<&&Point> = pts.iter().filter(|p| p.target == *t).collect();
        series.sort_by(|a, b| a.rate.total_cmp(&b.rate));
        let col = colour(t);
        c.draw_series(LineSeries::new(series.iter().map(|p| (p.rate, p.throughput)), col.stroke_width(3)))?
            .label(t.to_string())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], col.stroke_width(3)));
        c.draw_series(series.iter().map(|p| Circle::new((p.rate, p.throughput), 4, col.filled())))?;
    }
    c.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()?;
    root.present()?;
    Ok(())
}

/// Grouped bars: for each (scenario, percentile) a group, one bar per backend.
fn draw_backends(path: &Path, groups: &[(String, Vec<(String, f64)>)]) -> Result<(), Err> {
    let root = BitMapBackend::new(path, (1300, 620)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut backends: Vec<String> = Vec::new();
    for (_, bars) in groups {
        for (b, _) in bars {
            if !backends.contains(b) {
                backends.push(b.clone());
            }
        }
    }
    let (y0, y1) = log_range(groups.iter().flat_map(|(_, bars)| bars.iter().map(|(_, v)| *v)));
    let n = groups.len().max(1) as f64;
    let names: Vec<String> = groups.iter().map(|(g, _)| g.clone()).collect();
    let mut c = ChartBuilder::on(&root)
        .caption("SQLite, PostgreSQL, three nodes (PostgreSQL + Redis): latency, ms (log)", ("sans-serif", 22))
        .margin(14)
        .x_label_area_size(60)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..n, (y0.min(0.5)..y1 * 2.0).log_scale())?;
    c.configure_mesh()
        .disable_x_mesh()
        .x_labels(groups.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor();
            if (x - i - 0.5).abs() < 0.01 && i >= 0.0 {
                names.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|v| fmt_num(*v))
        .y_desc("ms")
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 17))
        .draw()?;
    let width = 0.8 / backends.len().max(1) as f64;
    for (bi, b) in backends.iter().enumerate() {
        let col = colour(b);
        let bars: Vec<Rectangle<(f64, f64)>> = groups
            .iter()
            .enumerate()
            .filter_map(|(gi, (_, bars))| {
                let v = bars.iter().find(|(name, _)| name == b)?.1;
                let x = gi as f64 + 0.1 + bi as f64 * width;
                Some(Rectangle::new([(x, y0.min(0.5)), (x + width * 0.92, v)], col.filled()))
            })
            .collect();
        c.draw_series(bars)?.label(b.clone()).legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 18, y + 6)], col.filled()));
        let labels: Vec<Text<'_, (f64, f64), String>> = groups
            .iter()
            .enumerate()
            .filter_map(|(gi, (_, bars))| {
                let v = bars.iter().find(|(name, _)| name == b)?.1;
                let x = gi as f64 + 0.1 + bi as f64 * width;
                let s = if v >= 100.0 {
                    format!("{v:.0}")
                } else if v >= 10.0 {
                    format!("{v:.1}")
                } else {
                    format!("{v:.2}")
                };
                Some(Text::new(s, (x, v * 1.12), ("sans-serif", 12).into_font()))
            })
            .collect();
        c.draw_series(labels)?;
    }
    c.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()?;
    root.present()?;
    Ok(())
}

fn near(a: f64, b: f64) -> bool {
    (a - b).abs() <= 0.01 * b.abs().max(1.0)
}

fn is_backend(target: &str) -> bool {
    target.starts_with("helpline")
}

/// The bar groups of `backends.png`: relay at `relay_rate`, routing at `routing_rate`.
pub fn backend_groups(pts: &[Point], opts: &PlotOpts) -> Vec<(String, Vec<(String, f64)>)> {
    let mut groups = Vec::new();
    for (scenario, rate, label) in [
        ("relay", opts.relay_rate, format!("relay one-way, {} msg/s", opts.relay_rate)),
        ("routing", opts.routing_rate, format!("routing start->offer, {}/s", opts.routing_rate)),
    ] {
        let mine: Vec<&Point> = pts.iter().filter(|p| p.scenario == scenario && is_backend(&p.target) && near(p.rate, rate)).collect();
        if mine.is_empty() {
            continue;
        }
        let mut by: BTreeMap<&str, Vec<(String, f64)>> = BTreeMap::new();
        for p in &mine {
            for (pct, v) in [("p50", p.p50), ("p99", p.p99), ("p99.9", p.p999)] {
                by.entry(pct).or_default().push((p.target.clone(), v));
            }
        }
        for pct in ["p50", "p99", "p99.9"] {
            if let Some(bars) = by.remove(pct) {
                groups.push((format!("{label} {pct}"), bars));
            }
        }
    }
    groups
}

/// Renders the charts into `out_dir`; returns the files written.
pub fn render(files: &[PathBuf], out_dir: &Path, opts: &PlotOpts) -> anyhow::Result<Vec<PathBuf>> {
    let docs = read(files)?;
    let pts = points(&docs);
    if pts.is_empty() {
        bail!("no relay or routing steps with latencies in {} file(s)", files.len());
    }
    load_font(opts)?;
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let mut written = Vec::new();
    let relay: Vec<&Point> = pts.iter().filter(|p| p.scenario == "relay").collect();
    if !relay.is_empty() {
        let path = out_dir.join("relay-latency.png");
        draw_relay(&path, &relay).map_err(|e| anyhow!("drawing {}: {e}", path.display()))?;
        written.push(path);
    }
    let groups = backend_groups(&pts, opts);
    if !groups.is_empty() {
        let path = out_dir.join("backends.png");
        draw_backends(&path, &groups).map_err(|e| anyhow!("drawing {}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn step(scenario: &str, target: &str, rate: f64, p50: f64) -> serde_json::Value {
        let lat = if scenario == "relay" { "one-way" } else { "start->offer" };
        json!({"scenario": scenario, "target": target, "params": {"rate": rate}, "throughput": rate,
               "latencies": {lat: {"count": 10, "p50_ms": p50, "p90_ms": p50 * 2.0, "p99_ms": p50 * 3.0, "p999_ms": p50 * 4.0, "max_ms": p50 * 5.0}}})
    }

    #[test]
    fn points_keep_the_first_of_each_step_and_skip_other_scenarios() {
        let a = json!({"reports": [step("relay", "bare", 2000.0, 0.9), step("relay", "helpline (sqlite)", 2000.0, 2.0),
                                   {"scenario": "connections", "target": "helpline (sqlite)", "params": {}}]});
        let b = json!({"reports": [step("relay", "helpline (sqlite)", 2000.0, 9.0), step("routing", "helpline (sqlite)", 100.0, 3.0)]});
        let pts = points(&[a, b, json!({"not": "a result"})]);
        assert_eq!(pts.len(), 3);
        assert_eq!(pts[1].p50, 2.0, "the first file's step wins");
        assert_eq!(pts[2].scenario, "routing");
        assert_eq!(pts[2].p99, 9.0);
    }

    #[test]
    fn backend_groups_compare_only_helpline_targets_at_the_chosen_rates() {
        let doc = json!({"reports": [
            step("relay", "bare", 2000.0, 0.9), step("relay", "helpline (sqlite)", 2000.0, 2.0),
            step("relay", "helpline (postgres)", 2000.0, 4.0), step("relay", "helpline (postgres, 3 nodes)", 2000.0, 8.0),
            step("relay", "helpline (sqlite)", 5000.0, 50.0), step("routing", "helpline (sqlite)", 100.0, 3.0)]});
        let groups = backend_groups(&points(&[doc]), &PlotOpts::default());
        assert_eq!(groups.len(), 6);
        assert_eq!(groups[0].1.len(), 3, "bare is not a backend");
        assert_eq!(groups[0].1[2], ("helpline (postgres, 3 nodes)".to_string(), 8.0));
        assert_eq!(groups[4].1, vec![("helpline (sqlite)".to_string(), 9.0)]);
    }

    #[test]
    fn render_writes_pngs_or_says_which_font_is_missing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("r.json");
        let doc = json!({"reports": [step("relay", "bare", 200.0, 0.9), step("relay", "bare", 2000.0, 1.0),
                                     step("relay", "helpline (sqlite)", 2000.0, 2.0), step("routing", "helpline (sqlite)", 100.0, 3.0)]});
        std::fs::write(&file, doc.to_string()).expect("write");
        let out = dir.path().join("png");
        let font_here = FONT_CANDIDATES.iter().any(|f| Path::new(f).exists());
        match render(std::slice::from_ref(&file), &out, &PlotOpts::default()) {
            Ok(written) => {
                assert!(font_here);
                assert_eq!(written.len(), 2);
                for w in written {
                    let bytes = std::fs::read(&w).expect("png written");
                    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{} is a PNG", w.display());
                }
            }
            Err(e) => {
                assert!(!font_here, "rendering failed with a font present: {e:#}");
                assert!(format!("{e:#}").contains("--font"), "{e:#}");
            }
        }
        // A file that is not a result is refused clearly.
        std::fs::write(&file, "not json").expect("write");
        let e = render(&[file], &out, &PlotOpts::default()).expect_err("not json");
        assert!(format!("{e:#}").contains("not a helpline-load JSON result"), "{e:#}");
    }
}
