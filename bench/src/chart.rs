//! The CLI's bar chart: marked MiB/s of every configuration (peers' too), one group per
//! workload.

use std::path::Path;

use plotters::prelude::*;

use crate::report::Report;

/// Draws `report` as a horizontal bar chart into the SVG file `path`.
///
/// # Errors
/// A message if the file cannot be written.
pub fn draw(report: &Report, path: &Path) -> Result<(), String> {
    let rows: Vec<_> = report
        .rows
        .iter()
        .filter(|r| r.marker != "reference")
        .collect();
    if rows.is_empty() {
        return Err("nothing to draw".into());
    }
    let bar_h = 26u32;
    let (width, top, left) = (960u32, 50u32, 330u32);
    let height = top + bar_h * rows.len() as u32 + 40;
    let root = SVGBackend::new(path, (width, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut title = format!(
        "sencha: marked MiB/s (higher is better), kernel detected: {}",
        report.detected_tier
    );
    if let Some(p) = report.peers.first() {
        title.push_str(&format!(", beside {}", p.collector));
    }
    root.draw(&Text::new(title, (10, 15), ("sans-serif", 18).into_font()))
        .map_err(|e| e.to_string())?;
    let max = rows.iter().map(|r| r.mib_per_s).fold(1.0, f64::max);
    // Room right of the longest bar for its value and ratios.
    let reserve = if report.peers.is_empty() { 120 } else { 230 };
    let scale = (width - left - reserve) as f64 / max;
    for (i, r) in rows.iter().enumerate() {
        let y = (top + bar_h * i as u32) as i32;
        let color = match (r.marker.as_str(), r.tier.as_str()) {
            ("baseline", _) => RGBColor(150, 150, 150),
            ("boehm", _) => RGBColor(230, 126, 34),
            (_, "avx512") => RGBColor(46, 125, 50),
            (_, "avx2") => RGBColor(67, 160, 71),
            _ => RGBColor(129, 199, 132),
        };
        let label = format!("{} {} {} x{}", r.workload, r.marker, r.tier, r.workers);
        root.draw(&Text::new(
            label,
            (10, y + 6),
            ("sans-serif", 14).into_font(),
        ))
        .map_err(|e| e.to_string())?;
        let w = (r.mib_per_s * scale).round() as i32;
        root.draw(&Rectangle::new(
            [
                (left as i32, y + 2),
                (left as i32 + w.max(1), y + bar_h as i32 - 4),
            ],
            color.filled(),
        ))
        .map_err(|e| e.to_string())?;
        let mut ratios = Vec::new();
        if let Some(s) = r.speedup.filter(|_| r.marker != "baseline") {
            ratios.push(format!("{s:.2}x base"));
        }
        if let Some(b) = r.vs_boehm.filter(|_| r.marker != "boehm") {
            ratios.push(format!("{b:.2}x boehm"));
        }
        let value = if ratios.is_empty() {
            format!("{:.0}", r.mib_per_s)
        } else {
            format!("{:.0} ({})", r.mib_per_s, ratios.join(", "))
        };
        root.draw(&Text::new(
            value,
            (left as i32 + w + 6, y + 6),
            ("sans-serif", 13).into_font(),
        ))
        .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())
}
