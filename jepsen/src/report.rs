//! What a run leaves behind: `results.json` (valid?, counts per anomaly class, faults and
//! recovery times, the options) and `report.html` (throughput and latency over time with
//! the fault intervals shaded), both derived from the history.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use history::checker::Report;
use history::history::{Event, History, Type, F};
use plotters::prelude::*;
use serde::Serialize;

use crate::nemesis::FaultInterval;

/// One completed send: when it completed, how long it took, how it ended.
#[derive(Clone, Copy, Debug)]
pub struct Op {
    pub end_ms: i64,
    pub latency_ms: i64,
    pub kind: Type,
}

/// Sends paired with their completions (each process has one send in flight).
pub fn ops(history: &History) -> Vec<Op> {
    let mut open: BTreeMap<&str, i64> = BTreeMap::new();
    let mut out = Vec::new();
    for e in history.events().iter().filter(|e| e.f.is_send()) {
        match e.kind {
            Type::Invoke => {
                open.insert(e.process.as_str(), e.time_ms);
            }
            kind => {
                if let Some(start) = open.remove(e.process.as_str()) {
                    out.push(Op {
                        end_ms: e.time_ms,
                        latency_ms: e.time_ms - start,
                        kind,
                    });
                }
            }
        }
    }
    out
}

/// Fills each fault's recovery time (from its heal to the next acknowledged send) and
/// its write stall (from its start to the first acknowledged send invoked after it).
pub fn recovery_times(history: &History, faults: &mut [FaultInterval]) {
    for f in faults.iter_mut() {
        f.write_stall_ms = history::stall::write_stall_ms(history.events(), f.start_ms, None);
    }
    let oks: Vec<i64> = history
        .events()
        .iter()
        .filter(|e| e.f.is_send() && e.kind == Type::Ok)
        .map(|e| e.time_ms)
        .collect();
    for f in faults {
        let i = oks.partition_point(|t| *t < f.end_ms);
        f.recovery_ms = oks.get(i).map(|t| t - f.end_ms);
    }
}

/// Write stalls of the faults of one scope (`nemesis::Scope`).
#[derive(Debug, Serialize)]
pub struct StallSummary {
    pub faults: usize,
    pub p50_ms: Option<i64>,
    pub p99_ms: Option<i64>,
    pub max_ms: Option<i64>,
    /// Faults after whose start no send was ever acknowledged.
    pub never_resumed: usize,
}

/// Write stalls by the scope of the fault (master, followers, majority, network).
pub fn stall_summaries(faults: &[FaultInterval]) -> BTreeMap<String, StallSummary> {
    let mut by_scope: BTreeMap<String, Vec<&FaultInterval>> = BTreeMap::new();
    for f in faults {
        by_scope
            .entry(f.scope.name().to_string())
            .or_default()
            .push(f);
    }
    by_scope
        .into_iter()
        .map(|(scope, faults)| {
            let stalls: Vec<i64> = faults.iter().filter_map(|f| f.write_stall_ms).collect();
            let p = |q| history::stall::percentile(&stalls, q);
            let summary = StallSummary {
                faults: faults.len(),
                p50_ms: p(50.0),
                p99_ms: p(99.0),
                max_ms: p(100.0),
                never_resumed: faults.len() - stalls.len(),
            };
            (scope, summary)
        })
        .collect()
}

#[derive(Debug, Serialize)]
pub struct Counts {
    pub invoked: usize,
    pub ok: usize,
    pub info: usize,
    pub fail: usize,
    pub delivered: usize,
    pub read: usize,
}

pub fn counts(history: &History) -> Counts {
    let n = |f: F, k: Type| {
        history
            .events()
            .iter()
            .filter(|e: &&Event| e.f == f && e.kind == k)
            .count()
    };
    // Plain, transactional and delayed sends alike.
    let sends = |k: Type| {
        history
            .events()
            .iter()
            .filter(|e| e.f.is_send() && e.kind == k)
            .count()
    };
    Counts {
        invoked: sends(Type::Invoke),
        ok: sends(Type::Ok),
        info: sends(Type::Info),
        fail: sends(Type::Fail),
        delivered: n(F::Deliver, Type::Ok),
        read: n(F::Read, Type::Ok),
    }
}

#[derive(Debug, Serialize)]
pub struct Results {
    pub valid: bool,
    /// Why the run is invalid, one line per class, empty when valid.
    pub problems: Vec<String>,
    pub test: String,
    pub seed: u64,
    pub network: String,
    pub options: Vec<String>,
    pub counts: Counts,
    /// Anomaly class → how many.
    pub anomalies: BTreeMap<String, usize>,
    pub checker: Report,
    /// Stored on the replicas but never delivered to the consumer group by the end of
    /// the drain (at-least-once per group).
    pub undelivered: Vec<String>,
    pub faults: Vec<FaultInterval>,
    /// How long writes stopped, by whom the fault hit.
    pub write_stalls: BTreeMap<String, StallSummary>,
    /// From the final heal to the first acknowledged send and to converged replicas.
    pub final_recovery_ms: Option<i64>,
    pub convergence_ms: Option<i64>,
    pub drain_ms: Option<i64>,
}

pub fn anomalies(r: &Report, undelivered: usize) -> BTreeMap<String, usize> {
    [
        ("lost", r.lost.len() - r.lost_tail.min(r.lost.len())),
        ("lost_allowed_tail", r.lost_tail),
        ("unexpected", r.unexpected.len()),
        ("failed_but_read", r.failed_but_read.len()),
        ("recovered", r.recovered),
        ("duplicated", r.duplicated),
        ("inconsistent_offsets", r.inconsistent_offsets.len()),
        ("fifo_violations", r.fifo_violations.len()),
        ("diverged", r.diverged.len()),
        ("tx_uncommitted_delivered", r.tx_uncommitted_delivered.len()),
        ("tx_committed_lost", r.tx_committed_lost.len()),
        ("delayed_early", r.delayed_early.len()),
        ("delayed_lost", r.delayed_lost.len()),
        ("sent_back_lost", r.sent_back_lost.len()),
        ("undelivered", undelivered),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn shade<DB: DrawingBackend>(
    chart: &mut ChartContext<
        '_,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, impl Ranged<ValueType = f64>>,
    >,
    faults: &[FaultInterval],
    y0: f64,
    y1: f64,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    chart.draw_series(faults.iter().map(|f| {
        let style = match f.kind.as_str() {
            "partition" | "loss" => RGBColor(200, 210, 255).filled(),
            "pause" => RGBColor(255, 235, 180).filled(),
            "power" => RGBColor(210, 180, 255).filled(),
            _ => RGBColor(255, 200, 200).filled(),
        };
        Rectangle::new(
            [(f.start_ms as f64 / 1e3, y0), (f.end_ms as f64 / 1e3, y1)],
            style,
        )
    }))?;
    Ok(())
}

/// plotters' errors carry the backend's error type; the report only needs the message.
fn plot_error(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("plotting: {e}")
}

fn throughput_svg(ops: &[Op], faults: &[FaultInterval], t_max_s: f64) -> anyhow::Result<String> {
    let buckets = t_max_s.ceil() as usize + 1;
    let mut per: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for op in ops {
        let name = match op.kind {
            Type::Ok => "ok",
            Type::Info => "info (unknown)",
            _ => "fail",
        };
        let v = per.entry(name).or_insert_with(|| vec![0.0; buckets]);
        v[(op.end_ms / 1000).clamp(0, buckets as i64 - 1) as usize] += 1.0;
    }
    let y_max = per.values().flatten().fold(1.0f64, |a, b| a.max(*b)) * 1.1;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1000, 300)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Sends completed per second", ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..t_max_s, 0f64..y_max)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("time (s)")
            .y_desc("sends/s")
            .draw()
            .map_err(plot_error)?;
        shade(&mut chart, faults, 0.0, y_max).map_err(plot_error)?;
        for (name, counts) in &per {
            let color = match *name {
                "ok" => RGBColor(30, 140, 60),
                "fail" => RGBColor(200, 30, 30),
                _ => RGBColor(230, 140, 0),
            };
            chart
                .draw_series(LineSeries::new(
                    counts.iter().enumerate().map(|(s, c)| (s as f64 + 0.5, *c)),
                    color.stroke_width(2),
                ))
                .map_err(plot_error)?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

fn latency_svg(ops: &[Op], faults: &[FaultInterval], t_max_s: f64) -> anyhow::Result<String> {
    let y_max = ops.iter().map(|o| o.latency_ms).max().unwrap_or(1).max(10) as f64 * 1.5;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1000, 300)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Send latency (ms, log scale)", ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..t_max_s, (0.5f64..y_max).log_scale())
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("time (s)")
            .y_desc("ms")
            .draw()
            .map_err(plot_error)?;
        shade(&mut chart, faults, 0.5, y_max).map_err(plot_error)?;
        for (kind, color, name) in [
            (Type::Ok, RGBColor(30, 140, 60), "ok"),
            (Type::Info, RGBColor(230, 140, 0), "info (unknown)"),
        ] {
            chart
                .draw_series(ops.iter().filter(|o| o.kind == kind).map(|o| {
                    Circle::new(
                        (o.end_ms as f64 / 1e3, (o.latency_ms as f64).max(0.5)),
                        2,
                        color.filled(),
                    )
                }))
                .map_err(plot_error)?
                .label(name)
                .legend(move |(x, y)| Circle::new((x + 10, y), 3, color.filled()));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Writes `results.json` and `report.html` into `dir`.
pub fn write(dir: &Path, results: &Results, history: &History) -> anyhow::Result<()> {
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(results)?,
    )?;
    let ops = ops(history);
    let t_max_s = history
        .events()
        .last()
        .map_or(1.0, |e| e.time_ms as f64 / 1e3)
        .max(1.0);
    let mut html = String::new();
    let verdict = if results.valid {
        "<span style=\"color:#1e8c3c\">valid</span>"
    } else {
        "<span style=\"color:#c81e1e\">INVALID</span>"
    };
    write!(
        html,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{test}</title>\
         <style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:2px 10px;text-align:left}}\
         .k{{color:#555}}</style></head><body><h1>{test}: {verdict}</h1>\
         <p class=\"k\">seed {seed} · {net} · {opts}</p>",
        test = escape(&results.test),
        seed = results.seed,
        net = escape(&results.network),
        opts = escape(&results.options.join(" ")),
    )?;
    for p in &results.problems {
        write!(html, "<p style=\"color:#c81e1e\">{}</p>", escape(p))?;
    }
    let c = &results.counts;
    write!(
        html,
        "<h2>Operations</h2><table><tr><th>invoked</th><th>ok</th><th>info</th><th>fail</th><th>delivered</th><th>read (all replicas)</th></tr>\
         <tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table><h2>Anomalies</h2><table>",
        c.invoked, c.ok, c.info, c.fail, c.delivered, c.read
    )?;
    for (k, v) in &results.anomalies {
        write!(html, "<tr><td>{k}</td><td>{v}</td></tr>")?;
    }
    html.push_str("</table><h2>Over time</h2><p class=\"k\">Shaded: faults (red: kill/leader, yellow: pause, blue: partition/loss, purple: power loss).</p>");
    html.push_str(&throughput_svg(&ops, &results.faults, t_max_s)?);
    html.push_str("<br>");
    html.push_str(&latency_svg(&ops, &results.faults, t_max_s)?);
    let ms = |v: Option<i64>| v.map_or("-".to_string(), |r| r.to_string());
    html.push_str("<h2>Write stalls</h2><p class=\"k\">From a fault's start to the first acknowledged send invoked after it, by whom the fault hit.</p>\
        <table><tr><th>scope</th><th>faults</th><th>p50 (ms)</th><th>p99 (ms)</th><th>max (ms)</th><th>never resumed</th></tr>");
    for (scope, s) in &results.write_stalls {
        write!(
            html,
            "<tr><td>{scope}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            s.faults,
            ms(s.p50_ms),
            ms(s.p99_ms),
            ms(s.max_ms),
            s.never_resumed
        )?;
    }
    html.push_str("</table><h2>Faults</h2><table><tr><th>start (s)</th><th>end (s)</th><th>fault</th><th>scope</th><th>writes stopped (ms)</th><th>heal → next ack (ms)</th></tr>");
    for f in &results.faults {
        write!(
            html,
            "<tr><td>{:.1}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            f.start_ms as f64 / 1e3,
            f.end_ms as f64 / 1e3,
            escape(&f.description),
            f.scope.name(),
            ms(f.write_stall_ms),
            ms(f.recovery_ms)
        )?;
    }
    html.push_str("</table><p class=\"k\">Files: history.jsonl, results.json, n*.log, namesrv.log.</p></body></html>\n");
    std::fs::write(dir.join("report.html"), html)?;
    Ok(())
}
