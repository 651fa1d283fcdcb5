//! The report's charts: inline SVG drawn with `plotters` (SVG backend only, no fonts, no
//! bitmap code: `default-features = false`).
//!
//! Why plotters and not hand-built SVG: axes with readable tick values, legends and a log
//! scale are most of the work of a chart, and plotters does them in well-tested code; its SVG
//! backend writes plain `<polyline>`/`<text>` elements (text is left to the browser, so no
//! font files are embedded) and the result needs no script to display. Each chart is one
//! [`Chart`] of named [`Series`]; [`Chart::svg`] draws it.

use plotters::coord::Shift;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

/// Line colours, in series order (colour-blind friendly Tableau 10).
const PALETTE: [RGBColor; 10] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0xbc, 0xbd, 0x22),
    RGBColor(0x17, 0xbe, 0xcf),
];

/// Stroke width of data lines — and only of them (grid and axes are 1, legend samples 3):
/// the page's self-check counts `polyline[stroke-width="2"]` as drawn data.
pub const DATA_STROKE: u32 = 2;

/// Pixel size of every chart (the page scales it to its width).
pub const WIDTH: u32 = 960;
pub const HEIGHT: u32 = 340;

/// One named line.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

impl Series {
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Series {
        Series {
            name: name.into(),
            points,
        }
    }
}

/// How the x axis is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XAxis {
    /// Seconds since the start of the first stage.
    Time,
    /// HdrHistogram's "nines": x = −log10(1 − quantile), labelled 0%, 90%, 99%, 99.9%, …
    Nines,
    /// The value a capacity search varied, with its description (`connections held`).
    Varied(&'static str),
}

/// A line chart.
#[derive(Debug, Clone)]
pub struct Chart {
    pub x: XAxis,
    /// The end of the x axis (all time charts of a run share one); `None`: the data's.
    pub x_end: Option<f64>,
    pub y_desc: String,
    /// A logarithmic y axis (the nines plot: latencies of several magnitudes).
    pub log_y: bool,
    pub series: Vec<Series>,
}

/// A chart could not be drawn (plotters reported an error).
#[derive(Debug, thiserror::Error)]
#[error("cannot draw the chart: {0}")]
pub struct ChartError(String);

impl Chart {
    /// Points over all series.
    pub fn points(&self) -> usize {
        self.series.iter().map(|s| s.points.len()).sum()
    }

    /// The chart as an `<svg>` element.
    pub fn svg(&self) -> Result<String, ChartError> {
        let mut out = String::new();
        {
            let root = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT)).into_drawing_area();
            self.draw(&root).map_err(|e| ChartError(e.to_string()))?;
            root.present().map_err(|e| ChartError(e.to_string()))?;
        }
        Ok(out)
    }

    fn draw(
        &self,
        root: &DrawingArea<SVGBackend<'_>, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
        root.fill(&WHITE)?;
        let all = || self.series.iter().flat_map(|s| s.points.iter());
        let x_max = all().map(|p| p.0).fold(self.x_end.unwrap_or(0.0), f64::max);
        let x_max = match self.x {
            XAxis::Time | XAxis::Varied(_) => x_max.max(1.0),
            XAxis::Nines => x_max.ceil().max(1.0),
        };
        let y_max = all().map(|p| p.1).fold(0.0_f64, f64::max);
        let mut builder = ChartBuilder::on(root);
        builder
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70);
        if self.log_y {
            let y_min = all()
                .map(|p| p.1)
                .filter(|v| *v > 0.0)
                .fold(f64::INFINITY, f64::min);
            let y_min = if y_min.is_finite() {
                y_min * 0.8
            } else {
                0.001
            };
            let y_max = (y_max * 1.25).max(y_min * 10.0);
            let mut chart = builder.build_cartesian_2d(0.0..x_max, (y_min..y_max).log_scale())?;
            self.mesh(&mut chart, x_max)?;
            // A log axis has no 0: samples below its bottom are drawn at the bottom.
            self.lines(&mut chart, |v| v.max(y_min))
        } else {
            // Headroom above the data for the legend (upper left): about a row per series.
            let headroom = 1.1 + 0.08 * self.series.len().min(6) as f64;
            let y_max = if y_max > 0.0 { y_max * headroom } else { 1.0 };
            let mut chart = builder.build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
            self.mesh(&mut chart, x_max)?;
            self.lines(&mut chart, |v| v)
        }
    }

    /// Grid, tick labels and axis descriptions.
    fn mesh<'a, Y>(
        &self,
        chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<RangedCoordf64, Y>>,
        x_max: f64,
    ) -> Result<(), DrawingAreaErrorKind<std::io::Error>>
    where
        Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        let x_desc = match self.x {
            XAxis::Time => "time since start (s)",
            XAxis::Nines => "percentile",
            XAxis::Varied(what) => what,
        };
        let nines = |v: &f64| nines_label(*v);
        let plain = |v: &f64| number(*v);
        let mut mesh = chart.configure_mesh();
        mesh.x_desc(x_desc)
            .y_desc(self.y_desc.as_str())
            .label_style(("sans-serif", 13).into_font())
            .y_label_formatter(&plain);
        if self.x == XAxis::Nines {
            // One tick per nine: 0%, 90%, 99%, …
            mesh.x_labels((x_max as usize) + 1)
                .x_label_formatter(&nines);
        } else {
            mesh.x_label_formatter(&plain);
        }
        mesh.draw()
    }

    /// Draw every series and the legend.
    fn lines<'a, Y>(
        &self,
        chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<RangedCoordf64, Y>>,
        clamp: impl Fn(f64) -> f64,
    ) -> Result<(), DrawingAreaErrorKind<std::io::Error>>
    where
        Y: Ranged<ValueType = f64>,
    {
        for (i, s) in self.series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let points: Vec<(f64, f64)> = s.points.iter().map(|&(x, y)| (x, clamp(y))).collect();
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(DATA_STROKE)))?
                .label(s.name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
                });
        }
        chart
            .configure_series_labels()
            .position(match self.x {
                // Latencies rise to the right: the lower right corner is free.
                XAxis::Nines => SeriesLabelPosition::LowerRight,
                XAxis::Time | XAxis::Varied(_) => SeriesLabelPosition::UpperLeft,
            })
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", 13))
            .draw()?;
        Ok(())
    }
}

/// A tick value: integers without decimals, others with up to three significant decimals.
pub fn number(v: f64) -> String {
    if (v == v.trunc() && v.abs() < 1e15) || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').to_string()
    }
}

/// The quantile at nines position `x` (x = −log10(1 − q)).
pub fn quantile_of_nines(x: f64) -> f64 {
    1.0 - 10f64.powf(-x)
}

/// The nines position of quantile `q` (capped below 1).
pub fn nines_of_quantile(q: f64) -> f64 {
    -(1.0 - q.min(1.0 - 1e-9)).log10()
}

/// `0%`, `90%`, `99%`, `99.9%`, … for whole positions; nothing between them.
fn nines_label(x: f64) -> String {
    if (x - x.round()).abs() > 1e-6 {
        return String::new();
    }
    let n = x.round() as i32;
    match n {
        0 => "0%".to_string(),
        1 => "90%".to_string(),
        _ => format!("99.{}%", "9".repeat((n - 2) as usize)).replace("99.%", "99%"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nines_axis_labels_and_positions() {
        assert_eq!(nines_label(0.0), "0%");
        assert_eq!(nines_label(1.0), "90%");
        assert_eq!(nines_label(2.0), "99%");
        assert_eq!(nines_label(3.0), "99.9%");
        assert_eq!(nines_label(5.0), "99.999%");
        assert_eq!(nines_label(1.5), "");
        assert!((nines_of_quantile(0.99) - 2.0).abs() < 1e-9);
        assert!((quantile_of_nines(3.0) - 0.999).abs() < 1e-12);
    }

    #[test]
    fn draws_one_polyline_per_series_with_legend() {
        let chart = Chart {
            x: XAxis::Time,
            x_end: None,
            y_desc: "connections".into(),
            log_y: false,
            series: vec![
                Series::new("open", vec![(0.0, 0.0), (5.0, 50.0), (10.0, 100.0)]),
                Series::new("target", vec![(0.0, 0.0), (10.0, 100.0)]),
            ],
        };
        let svg = chart.svg().unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
        assert_eq!(
            svg.matches("stroke-width=\"2\"").count(),
            2,
            "one data line per series"
        );
        assert!(svg.contains("\nopen\n</text>") && svg.contains("\ntarget\n</text>"));
        assert_eq!(chart.points(), 5);
        let nines = Chart {
            x: XAxis::Nines,
            x_end: None,
            y_desc: "ms".into(),
            log_y: true,
            series: vec![Series::new("rtt", vec![(0.0, 0.5), (2.0, 3.0), (3.0, 9.0)])],
        };
        let svg = nines.svg().unwrap();
        assert!(svg.contains("\n99.9%\n</text>"), "nines labels missing");
    }
}
