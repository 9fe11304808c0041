//! HTML for the dashboard's server-rendered pages: escaping, the page frame, tables and
//! line charts drawn as inline SVG. No script, no stylesheet fetched: the page works
//! offline and renders the same in any browser.

use std::fmt::Write;

/// `text` with HTML's special characters escaped.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `text` for a URL's query string.
pub fn url(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

const STYLE: &str =
    "body{font:14px system-ui,sans-serif;margin:0;color:#1d2330;background:#f5f6f8}\
header{background:#1d2b45;color:#fff;padding:10px 24px;display:flex;gap:24px;align-items:center}\
header b{font-size:17px;margin-right:16px}header a{color:#cfd8ea;text-decoration:none}\
header a.on{color:#fff;border-bottom:2px solid #5fa8ff}main{padding:16px 24px}\
h1{font-size:20px;margin:4px 0 12px}h2{font-size:16px;margin:20px 0 8px}\
table{border-collapse:collapse;background:#fff;margin-bottom:12px}\
th,td{border:1px solid #dde1e8;padding:5px 10px;text-align:left}th{background:#eef1f5}\
td.n{text-align:right;font-variant-numeric:tabular-nums}.muted{color:#6b7385}\
.card{background:#fff;border:1px solid #dde1e8;padding:10px 14px;margin-bottom:12px}\
.ok{color:#1a7f37}.bad{color:#c62828}form{margin:6px 0}input{margin-right:6px}\
pre{background:#fff;border:1px solid #dde1e8;padding:8px;white-space:pre-wrap;max-width:1100px}\
.charts{display:flex;flex-wrap:wrap;gap:12px}";

const PAGES: [(&str, &str); 6] = [
    ("/", "Cluster"),
    ("/topics", "Topics"),
    ("/groups", "Consumer groups"),
    ("/message", "Messages"),
    ("/dlq", "Dead letters"),
    ("/charts", "Charts"),
];

/// A whole page: the navigation with `active` marked, then `body`.
pub fn page(title: &str, active: &str, body: &str) -> String {
    let mut nav = String::new();
    for (href, name) in PAGES {
        let on = if href == active { " class=\"on\"" } else { "" };
        let _ = write!(nav, "<a href=\"{href}\"{on}>{name}</a>");
    }
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{} · raftmq</title>\
         <style>{STYLE}</style></head><body><header><b>raftmq dashboard</b>{nav}</header>\
         <main><h1>{}</h1>{body}</main></body></html>",
        esc(title),
        esc(title)
    )
}

/// A table with `headers` and `rows` of cells already in HTML. A cell starting with
/// `\u{1}` is numeric (right-aligned); the marker is dropped.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = String::from("<table><tr>");
    for h in headers {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            match cell.strip_prefix('\u{1}') {
                Some(n) => {
                    let _ = write!(out, "<td class=\"n\">{n}</td>");
                }
                None => {
                    let _ = write!(out, "<td>{cell}</td>");
                }
            }
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
    out
}

/// A value the browser test finds by `id`.
pub fn value(id: &str, v: impl std::fmt::Display) -> String {
    format!("<span id=\"{}\">{}</span>", esc(id), esc(&v.to_string()))
}

/// A numeric table cell holding [`value`].
pub fn num(id: &str, v: impl std::fmt::Display) -> String {
    format!("\u{1}{}", value(id, v))
}

/// A line chart of `series` (name, points as (seconds ago, value)) in `unit`.
pub fn chart(title: &str, unit: &str, series: &[(String, Vec<(f64, f64)>)]) -> String {
    const W: f64 = 520.0;
    const H: f64 = 220.0;
    const LEFT: f64 = 56.0;
    const BOTTOM: f64 = 28.0;
    const COLORS: [&str; 6] = [
        "#2f6fde", "#e0782c", "#1a9c5b", "#b33dc6", "#c62828", "#6b7385",
    ];
    let span = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(t, _)| *t))
        .fold(60.0_f64, f64::max);
    let top = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, v)| *v))
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max)
        .max(1.0)
        * 1.1;
    let x = |ago: f64| LEFT + (W - LEFT - 10.0) * (1.0 - ago / span);
    let y = |v: f64| (H - BOTTOM) - (H - BOTTOM - 10.0) * (v / top);
    let mut svg = format!(
        "<div class=\"card\"><b>{}</b> <span class=\"muted\">({})</span><br>\
         <svg width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\">",
        esc(title),
        esc(unit)
    );
    for i in 0..=4 {
        let v = top * f64::from(i) / 4.0;
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e3e6eb\"/>\
             <text x=\"{}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\" fill=\"#6b7385\">{}</text>",
            W - 10.0,
            LEFT - 6.0,
            y(v) + 4.0,
            short(v),
            y = y(v)
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{LEFT}\" y=\"{}\" font-size=\"11\" fill=\"#6b7385\">{:.0} s ago</text>\
         <text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\" fill=\"#6b7385\">now</text>",
        H - 8.0,
        span,
        W - 10.0,
        H - 8.0
    );
    let mut legend = String::new();
    for (i, (name, points)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let path: Vec<String> = points
            .iter()
            .filter(|(_, v)| v.is_finite())
            .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v)))
            .collect();
        if !path.is_empty() {
            let _ = write!(
                svg,
                "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
                path.join(" ")
            );
        }
        let _ = write!(
            legend,
            "<span style=\"color:{color}\">■</span> {} &nbsp; ",
            esc(name)
        );
    }
    if series.is_empty() {
        legend.push_str("<span class=\"muted\">no samples yet</span>");
    }
    let _ = write!(svg, "</svg><br>{legend}</div>");
    svg
}

/// `v` in a few characters: 1.2k, 3.4M.
fn short(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if v >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_urls_encoded() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(url("%DLQ%g 1"), "%25DLQ%25g%201");
    }

    #[test]
    fn a_chart_draws_each_series() {
        let svg = chart(
            "in",
            "msg/s",
            &[("T".into(), vec![(10.0, 5.0), (0.0, 7.0)])],
        );
        assert!(svg.contains("<polyline"), "{svg}");
        assert!(chart("in", "msg/s", &[]).contains("no samples yet"));
    }
}
