//! Writing the results: a Markdown table and an SVG chart of the restart gap.

use std::fmt::Write as _;

/// One target's figures.
pub struct Figures {
    pub name: &'static str,
    pub fail_fast_ms: f64,
    pub ready_ms: f64,
    /// (clients, median gap ms, share of clean goodbyes)
    pub gaps: Vec<(usize, f64, f64)>,
    /// (connections, requests/s, p50 ms, p99 ms)
    pub throughput: Vec<(usize, f64, f64, f64)>,
    pub idle_rss_mib: f64,
    pub per_connection_kib: f64,
}

pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub kernel: String,
    pub node: String,
}

impl Machine {
    pub fn read() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
            .unwrap_or_else(|| "unknown".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_owned();
        let node = std::process::Command::new("node")
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        Self {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kernel,
            node,
        }
    }
}

fn row(
    out: &mut String,
    figure: &str,
    ours: f64,
    theirs: f64,
    unit: &str,
    target: &str,
    met: Option<bool>,
) {
    let ratio = if ours > 0.0 { theirs / ours } else { f64::NAN };
    let verdict = match met {
        Some(true) => "yes",
        Some(false) => "**no**",
        None => "",
    };
    let _ = writeln!(
        out,
        "| {figure} | {ours:.2} {unit} | {theirs:.2} {unit} | {ratio:.2}× | {target} | {verdict} |"
    );
}

pub fn markdown(
    ours: &Figures,
    theirs: &Figures,
    machine: &Machine,
    command: &str,
    svg_name: &str,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Benchmarks\n");
    let _ = writeln!(
        out,
        "Produced by `{command}` — every number below is from that run, on this machine:\n"
    );
    let _ = writeln!(
        out,
        "- CPU: {} ({} cores available)\n- Linux {}\n- Node {} with `ws` 8.23.0 for the reference (`bench/reference/server.js`)\n",
        machine.cpu, machine.cores, machine.kernel, machine.node
    );
    let _ = writeln!(
        out,
        "Medians unless noted. *Ratio* is reference ÷ gateway: above 1 means the gateway is faster or \
         smaller (for throughput, gateway ÷ reference). The machine is shared and noisy: expect ±20 %.\n"
    );
    let _ = writeln!(
        out,
        "| figure | gateway | node reference | ratio | target | met |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    row(
        &mut out,
        "fail-fast: exec → exit of a refused start",
        ours.fail_fast_ms,
        theirs.fail_fast_ms,
        "ms",
        "≤ 3 ms",
        Some(ours.fail_fast_ms <= 3.0),
    );
    row(
        &mut out,
        "ready: exec → first `/healthz` 200",
        ours.ready_ms,
        theirs.ready_ms,
        "ms",
        "≤ 5 ms",
        Some(ours.ready_ms <= 5.0),
    );
    for ((n, gap, share), (_, their_gap, their_share)) in ours.gaps.iter().zip(&theirs.gaps) {
        let target = if *n == 1000 { "≤ 30 ms, 100 %" } else { "" };
        let met = (*n == 1000).then_some(*gap <= 30.0 && *share >= 1.0);
        row(
            &mut out,
            &format!("restart gap, {n} clients"),
            *gap,
            *their_gap,
            "ms",
            target,
            met,
        );
        let _ = writeln!(
            out,
            "| clients with shutdown event + close 1001, {n} clients | {:.1} % | {:.1} % | | 100 % | {} |",
            share * 100.0,
            their_share * 100.0,
            if *share >= 1.0 { "yes" } else { "**no**" }
        );
    }
    for ((c, rps, p50, p99), (_, their_rps, their_p50, their_p99)) in
        ours.throughput.iter().zip(&theirs.throughput)
    {
        let ratio = rps / their_rps;
        let _ = writeln!(
            out,
            "| `health` throughput, {c} connection{} | {rps:.0} req/s | {their_rps:.0} req/s | {ratio:.2}× | ≥ 2× | {} |",
            if *c == 1 { "" } else { "s" },
            if ratio >= 2.0 { "yes" } else { "**no**" }
        );
        row(
            &mut out,
            &format!("`health` latency p50, {c} conn."),
            *p50,
            *their_p50,
            "ms",
            "",
            None,
        );
        row(
            &mut out,
            &format!("`health` latency p99, {c} conn."),
            *p99,
            *their_p99,
            "ms",
            "",
            None,
        );
    }
    row(
        &mut out,
        "RSS with no clients",
        ours.idle_rss_mib,
        theirs.idle_rss_mib,
        "MiB",
        "≤ 8 MiB",
        Some(ours.idle_rss_mib <= 8.0),
    );
    row(
        &mut out,
        "RSS per idle WebSocket (2000 open)",
        ours.per_connection_kib,
        theirs.per_connection_kib,
        "KiB",
        "≤ 8 KiB",
        Some(ours.per_connection_kib <= 8.0),
    );
    let _ = writeln!(out, "\n## Restart gap against connected clients\n");
    let _ = writeln!(out, "![restart gap]({svg_name})\n");
    out
}

/// A line chart of the restart gap (ms) against connected clients, both targets.
pub fn restart_gap_svg(ours: &Figures, theirs: &Figures) -> String {
    let (w, h, left, right, top, bottom) = (640.0, 360.0, 70.0, 20.0, 40.0, 50.0);
    let max = ours
        .gaps
        .iter()
        .chain(&theirs.gaps)
        .map(|g| g.1)
        .fold(1.0f64, f64::max)
        * 1.15;
    let n = ours.gaps.len().max(2);
    let x = |i: usize| left + (w - left - right) * i as f64 / (n - 1) as f64;
    let y = |v: f64| top + (h - top - bottom) * (1.0 - v / max);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="22" text-anchor="middle" font-size="14">Restart gap: SIGTERM to port free (median ms)</text>
"#,
        w / 2.0
    );
    for k in 0..=4 {
        let v = max * k as f64 / 4.0;
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{v:.1}</text>"##,
            w - right,
            left - 6.0,
            y(v) + 4.0,
            yy = y(v)
        );
    }
    for (i, (clients, _, _)) in ours.gaps.iter().enumerate() {
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{clients} clients</text>"#,
            x(i),
            h - bottom + 20.0
        );
    }
    for (figures, colour, label_y) in [(ours, "#1f77b4", 50.0), (theirs, "#d62728", 68.0)] {
        let points: Vec<String> = figures
            .gaps
            .iter()
            .enumerate()
            .map(|(i, g)| format!("{:.1},{:.1}", x(i), y(g.1)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            points.join(" ")
        );
        for (i, g) in figures.gaps.iter().enumerate() {
            let _ = writeln!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="4" fill="{colour}"/><text x="{:.1}" y="{:.1}" fill="{colour}">{:.1}</text>"#,
                x(i),
                y(g.1),
                x(i) + 6.0,
                y(g.1) - 6.0,
                g.1
            );
        }
        let _ = writeln!(
            svg,
            r#"<rect x="{}" y="{}" width="12" height="12" fill="{colour}"/><text x="{}" y="{}">{}</text>"#,
            left + 10.0,
            label_y - 10.0,
            left + 28.0,
            label_y,
            figures.name
        );
    }
    svg.push_str("</svg>\n");
    svg
}
