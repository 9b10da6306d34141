//! SVG plots of run metrics: a CDF of samples and time series.

use std::path::Path;

use plotters::prelude::*;

/// Why a plot could not be drawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlotError(pub String);

impl std::fmt::Display for PlotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "plot: {}", self.0)
    }
}

impl std::error::Error for PlotError {}

fn err(e: impl std::fmt::Display) -> PlotError {
    PlotError(e.to_string())
}

/// Bounds of a set of points, widened so a flat series still has an area.
fn bounds(points: impl Iterator<Item = (f64, f64)>) -> ((f64, f64), (f64, f64)) {
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in points.filter(|(x, y)| x.is_finite() && y.is_finite()) {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if x0 > x1 {
        return ((0.0, 1.0), (0.0, 1.0));
    }
    let widen = |a: f64, b: f64| {
        if b - a < 1e-12 {
            (a - 0.5, b + 0.5)
        } else {
            (a, b)
        }
    };
    (widen(x0, x1), widen(y0, y1))
}

/// Write the empirical CDF of `samples` to `path` as SVG.
pub fn cdf_svg(path: &Path, title: &str, x_label: &str, samples: &[f64]) -> Result<(), PlotError> {
    let mut s: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
    s.sort_by(f64::total_cmp);
    let n = s.len().max(1) as f64;
    let points: Vec<(f64, f64)> = s
        .iter()
        .enumerate()
        .map(|(i, &x)| (x, (i + 1) as f64 / n))
        .collect();
    let ((x0, x1), _) = bounds(points.iter().copied());
    let root = SVGBackend::new(path, (640, 400)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(45)
        .build_cartesian_2d(x0..x1, 0.0..1.0)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc("fraction")
        .draw()
        .map_err(err)?;
    chart
        .draw_series(LineSeries::new(points, &BLUE))
        .map_err(err)?;
    root.present().map_err(err)
}

/// Write named time series of (seconds, value) to `path` as SVG, one line each.
pub fn time_series_svg(
    path: &Path,
    title: &str,
    y_label: &str,
    series: &[(&str, &[(f64, f64)])],
) -> Result<(), PlotError> {
    let ((x0, x1), (y0, y1)) = bounds(series.iter().flat_map(|(_, p)| p.iter().copied()));
    let root = SVGBackend::new(path, (640, 400)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(55)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc(y_label)
        .draw()
        .map_err(err)?;
    for (i, (name, points)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(points.iter().copied(), color))
            .map_err(err)?
            .label(*name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 15, y)], color));
    }
    if series.len() > 1 {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .draw()
            .map_err(err)?;
    }
    root.present().map_err(err)
}

/// Draw a routing table to `path` as SVG: for each bucket index (x axis), its entry count
/// as a bar (top) and each entry's live time in minutes as a dot (bottom). `buckets`
/// holds (bucket index, live times of its entries in minutes); only the span of non-empty
/// buckets is drawn.
pub fn routing_table_svg(
    path: &Path,
    title: &str,
    buckets: &[(u8, Vec<f64>)],
) -> Result<(), PlotError> {
    let used: Vec<&(u8, Vec<f64>)> = buckets.iter().filter(|(_, v)| !v.is_empty()).collect();
    let lo = used.first().map_or(150, |(i, _)| i32::from(*i)) - 1;
    let hi = used.last().map_or(159, |(i, _)| i32::from(*i)) + 1;
    let max_n = used.iter().map(|(_, v)| v.len()).max().unwrap_or(1).max(8) as i32;
    let max_age = used
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .fold(1.0, f64::max);
    let root = SVGBackend::new(path, (720, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (top, bottom) = root.split_vertically(260);
    let mut counts = ChartBuilder::on(&top)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(45)
        .build_cartesian_2d(f64::from(lo)..f64::from(hi), 0.0..f64::from(max_n + 1))
        .map_err(err)?;
    counts
        .configure_mesh()
        .x_desc("bucket j (2^j <= distance < 2^(j+1))")
        .y_desc("peers")
        .draw()
        .map_err(err)?;
    counts
        .draw_series(used.iter().map(|(i, v)| {
            let x = f64::from(*i);
            Rectangle::new([(x - 0.4, 0.0), (x + 0.4, v.len() as f64)], BLUE.filled())
        }))
        .map_err(err)?;
    let mut ages = ChartBuilder::on(&bottom)
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(45)
        .build_cartesian_2d(f64::from(lo)..f64::from(hi), 0.0..max_age * 1.05)
        .map_err(err)?;
    ages.configure_mesh()
        .x_desc("bucket j")
        .y_desc("live time, min")
        .draw()
        .map_err(err)?;
    let dots = used.iter().flat_map(|(i, v)| {
        let n = v.len().max(1) as f64;
        v.iter().enumerate().map(move |(k, &a)| {
            // Spread a bucket's entries across its column, oldest first.
            let x = f64::from(*i) - 0.35 + 0.7 * k as f64 / n;
            Circle::new((x, a), 3, RED.filled())
        })
    });
    ages.draw_series(dots).map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// Write points (x, y) to `path` as SVG dots, with a dashed vertical line at `mark_x`
/// (e.g. when the swarm formed) and a horizontal one at y = 80 (the goal).
pub fn scatter_svg(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    points: &[(f64, f64)],
    mark_x: Option<f64>,
) -> Result<(), PlotError> {
    let ((x0, x1), (_, y1)) = bounds(points.iter().copied().chain(mark_x.map(|x| (x, 0.0))));
    let y1 = y1.max(100.0) * 1.05;
    let root = SVGBackend::new(path, (640, 400)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(45)
        .build_cartesian_2d(x0..x1, 0.0..y1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .draw()
        .map_err(err)?;
    chart
        .draw_series(
            points
                .iter()
                .map(|&(x, y)| Circle::new((x, y), 3, BLUE.filled())),
        )
        .map_err(err)?;
    chart
        .draw_series(LineSeries::new(
            [(x0, 80.0), (x1, 80.0)],
            RED.stroke_width(1),
        ))
        .map_err(err)?;
    if let Some(x) = mark_x {
        chart
            .draw_series(LineSeries::new([(x, 0.0), (x, y1)], BLACK.mix(0.5)))
            .map_err(err)?;
    }
    root.present().map_err(err)
}

/// Write labelled bars to `path` as SVG.
pub fn bars_svg(
    path: &Path,
    title: &str,
    y_label: &str,
    bars: &[(String, f64)],
) -> Result<(), PlotError> {
    let n = bars.len().max(1);
    let y1 = bars.iter().map(|b| b.1).fold(1e-9, f64::max) * 1.1;
    let root = SVGBackend::new(path, (720, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let labels: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(60)
        .y_label_area_size(55)
        .build_cartesian_2d(-0.5..(n as f64 - 0.5), 0.0..y1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                labels.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc(y_label)
        .draw()
        .map_err(err)?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, b)| {
            let x = i as f64;
            Rectangle::new([(x - 0.35, 0.0), (x + 0.35, b.1)], BLUE.filled())
        }))
        .map_err(err)?;
    root.present().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_svgs() {
        let dir = std::env::temp_dir().join(format!("onionpeer-sim-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cdf = dir.join("cdf.svg");
        cdf_svg(&cdf, "rtt", "ms", &[3.0, 1.0, 2.0, 10.0]).unwrap();
        let text = std::fs::read_to_string(&cdf).unwrap();
        assert!(text.starts_with("<svg") && text.contains("<polyline"));
        let ts = dir.join("ts.svg");
        let a = [(0.0, 1.0), (1.0, 2.0)];
        let b = [(0.0, 0.0), (1.0, 0.0)];
        time_series_svg(&ts, "load", "bytes", &[("a", &a), ("b", &b)]).unwrap();
        assert!(std::fs::read_to_string(&ts).unwrap().contains("<polyline"));
        let sc = dir.join("scatter.svg");
        scatter_svg(
            &sc,
            "rate",
            "s",
            "%",
            &[(1.0, 90.0), (2.0, 70.0)],
            Some(1.5),
        )
        .unwrap();
        assert!(std::fs::read_to_string(&sc).unwrap().contains("<circle"));
        let bars = dir.join("bars.svg");
        bars_svg(
            &bars,
            "served",
            "MB",
            &[("seeder".into(), 3.0), ("peers".into(), 7.0)],
        )
        .unwrap();
        assert!(std::fs::read_to_string(&bars).unwrap().contains("<rect"));
        cdf_svg(&dir.join("empty.svg"), "none", "ms", &[]).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
