//! Writing the results: a Markdown table, an SVG chart of the restart gap and one of
//! the restarts under load.

use std::fmt::Write as _;

use crate::restart_load::LoadRun;
use crate::stats::{median, ms, percentile};

/// One target's figures.
pub struct Figures {
    pub name: &'static str,
    pub fail_fast_ms: f64,
    /// The bind-and-exit floor, measured interleaved with `fail_fast_ms`.
    pub floor_ms: f64,
    pub ready_ms: f64,
    /// (clients, median gap ms, share of clean goodbyes)
    pub gaps: Vec<(usize, f64, f64)>,
    pub restart_load: LoadRun,
    /// (connections, requests/s, p50 ms, p99 ms)
    pub throughput: Vec<(usize, f64, f64, f64)>,
    pub idle_rss_mib: f64,
    pub per_connection_kib: f64,
}

/// The restart-under-load figures of one run, as reported.
#[derive(Debug)]
pub struct RestartLoadSummary {
    pub clients: usize,
    pub restarts: usize,
    pub served: usize,
    pub failed: usize,
    pub first_failure: Option<String>,
    pub refused_per_restart: f64,
    pub reset_per_restart: f64,
    pub goodbyes_per_restart: f64,
    /// p99 over the restarts of each restart's longest connect wait.
    pub longest_wait_p99_ms: f64,
    pub longest_wait_median_ms: f64,
    /// p99 over every request that overlapped a restart.
    pub wait_p99_ms: f64,
    pub serving_median_ms: f64,
    pub serving_max_ms: f64,
}

impl RestartLoadSummary {
    pub fn of(run: &LoadRun) -> Self {
        let per_restart = |n: usize| n as f64 / run.restarts.max(1) as f64;
        Self {
            clients: run.clients,
            restarts: run.restarts,
            served: run.served,
            failed: run.failed,
            first_failure: run.first_failure.clone(),
            refused_per_restart: per_restart(run.refused),
            reset_per_restart: per_restart(run.reset),
            goodbyes_per_restart: per_restart(run.goodbyes),
            longest_wait_p99_ms: ms(percentile(&run.longest_wait, 0.99)),
            longest_wait_median_ms: ms(median(&run.longest_wait)),
            wait_p99_ms: ms(percentile(&run.waits_during_restarts, 0.99)),
            serving_median_ms: ms(median(&run.serving_after_signal)),
            serving_max_ms: ms(percentile(&run.serving_after_signal, 1.0)),
        }
    }
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
    let ratio = if ours > 0.0 {
        format!("{:.2}×", theirs / ours)
    } else {
        String::new()
    };
    let verdict = match met {
        Some(true) => "yes",
        Some(false) => "**no**",
        None => "",
    };
    let _ = writeln!(
        out,
        "| {figure} | {ours:.2} {unit} | {theirs:.2} {unit} | {ratio} | {target} | {verdict} |"
    );
}

pub fn markdown(
    ours: &Figures,
    theirs: &Figures,
    machine: &Machine,
    command: &str,
    gap_svg: &str,
    load_svg: &str,
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
         smaller (for throughput, gateway ÷ reference). The machine is shared with other developers, \
         whose builds and tests ran during this run: expect ±20 % and more; \
         [performance.md](performance.md) lists every run of the day.\n"
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
        "bind-and-exit floor (`bench/floor/bind_floor.c`), interleaved with the row above",
        ours.floor_ms,
        theirs.floor_ms,
        "ms",
        "",
        None,
    );
    let (our_over_floor, their_over_floor) = (
        ours.fail_fast_ms / ours.floor_ms,
        theirs.fail_fast_ms / theirs.floor_ms,
    );
    let _ = writeln!(
        out,
        "| fail-fast ÷ floor | {our_over_floor:.2}× | {their_over_floor:.2}× | | ≤ 1.5× | {} |",
        verdict(our_over_floor <= 1.5)
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
            &format!("restart gap (`stop` + start), {n} clients"),
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
            verdict(*share >= 1.0)
        );
    }
    restart_load_rows(&mut out, ours, theirs);
    for ((c, rps, p50, p99), (_, their_rps, their_p50, their_p99)) in
        ours.throughput.iter().zip(&theirs.throughput)
    {
        let ratio = rps / their_rps;
        let _ = writeln!(
            out,
            "| `health` throughput, {c} connection{} | {rps:.0} req/s | {their_rps:.0} req/s | {ratio:.2}× | ≥ 2× | {} |",
            if *c == 1 { "" } else { "s" },
            verdict(ratio >= 2.0)
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
    let _ = writeln!(out, "![restart gap]({gap_svg})\n");
    restart_load_section(&mut out, ours, theirs, load_svg);
    out
}

fn verdict(met: bool) -> &'static str {
    if met { "yes" } else { "**no**" }
}

fn restart_load_rows(out: &mut String, ours: &Figures, theirs: &Figures) {
    let (us, them) = (
        RestartLoadSummary::of(&ours.restart_load),
        RestartLoadSummary::of(&theirs.restart_load),
    );
    let load = format!("{} clients, {} restarts", us.clients, us.restarts);
    let _ = writeln!(
        out,
        "| restart under load ({load}): gateway by SIGHUP, reference by stop + start — refused connections per restart | {:.1} | {:.1} | | 0 (gateway) | {} |",
        us.refused_per_restart,
        them.refused_per_restart,
        verdict(us.refused_per_restart == 0.0)
    );
    let _ = writeln!(
        out,
        "| reset connections per restart, under load | {:.1} | {:.1} | | 0 (gateway) | {} |",
        us.reset_per_restart,
        them.reset_per_restart,
        verdict(us.reset_per_restart == 0.0)
    );
    row(
        out,
        &format!("longest connect wait during a restart, p99 of {}", us.restarts),
        us.longest_wait_p99_ms,
        them.longest_wait_p99_ms,
        "ms",
        "≤ 5 ms",
        Some(us.longest_wait_p99_ms <= 5.0),
    );
    row(
        out,
        "restart signal → new process serving (new pid on `/healthz`)",
        us.serving_median_ms,
        them.serving_median_ms,
        "ms",
        "≤ 10 ms",
        Some(us.serving_median_ms <= 10.0),
    );
    let _ = writeln!(
        out,
        "| WebSocket sessions ended by the restart notice per restart (1012 / 1001) | {:.1} | {:.1} | | | |",
        us.goodbyes_per_restart, them.goodbyes_per_restart
    );
    let _ = writeln!(
        out,
        "| requests served / other failures, whole restart-under-load run | {} / {} | {} / {} | | 0 failures | {} |",
        us.served,
        us.failed,
        them.served,
        them.failed,
        verdict(us.failed == 0)
    );
}

fn restart_load_section(out: &mut String, ours: &Figures, theirs: &Figures, load_svg: &str) {
    let us = RestartLoadSummary::of(&ours.restart_load);
    let _ = writeln!(out, "## Restarts under load
");
    let _ = writeln!(
        out,
        "{} clients loop, half starting with each: connect + `GET /healthz`, then connect + WebSocket \
         upgrade + `connect` + `health` + close. Meanwhile the server restarts {} times, {} ms of load \
         apart: the gateway by `SIGHUP` (the handoff of section 6 of the contract), the reference by \
         SIGTERM, waiting for its exit, and starting it again. A *connect wait* runs from a request's \
         first `connect()` to the server's first answer (HTTP response, or WebSocket `101`), a refused \
         or reset connect being retried every {} ms; a request counts as refused or reset once, \
         however many retries it took. A restart lasts from the signal until the new process answers \
         `/healthz` with its own pid and the old one has exited.\n",
        us.clients,
        us.restarts,
        crate::restart_load::SETTLE.as_millis(),
        crate::restart_load::RETRY.as_millis()
    );
    let _ = writeln!(out, "| | gateway | node reference |\n|---|---|---|");
    let them = RestartLoadSummary::of(&theirs.restart_load);
    let _ = writeln!(
        out,
        "| longest connect wait per restart, median / p99 | {:.2} / {:.2} ms | {:.2} / {:.2} ms |",
        us.longest_wait_median_ms,
        us.longest_wait_p99_ms,
        them.longest_wait_median_ms,
        them.longest_wait_p99_ms
    );
    let _ = writeln!(
        out,
        "| connect wait p99, every request during a restart | {:.2} ms | {:.2} ms |",
        us.wait_p99_ms, them.wait_p99_ms
    );
    let _ = writeln!(
        out,
        "| signal → new process serving, median / max | {:.2} / {:.2} ms | {:.2} / {:.2} ms |",
        us.serving_median_ms, us.serving_max_ms, them.serving_median_ms, them.serving_max_ms
    );
    for (name, summary) in [("gateway", &us), ("node reference", &them)] {
        if let Some(failure) = &summary.first_failure {
            let _ = writeln!(out, "\nFirst other failure ({name}): `{failure}`");
        }
    }
    let _ = writeln!(out, "\n![restarts under load]({load_svg})\n");
}

/// Bars of each restart's longest connect wait, both targets, on a log scale.
pub fn restart_load_svg(ours: &Figures, theirs: &Figures) -> String {
    let (w, h, left, right, top, bottom) = (640.0, 360.0, 70.0, 20.0, 40.0, 50.0);
    let per_restart = |f: &Figures| -> Vec<f64> {
        f.restart_load
            .longest_wait
            .iter()
            .map(|d| ms(*d).max(0.01))
            .collect()
    };
    let (us, them) = (per_restart(ours), per_restart(theirs));
    let n = us.len().max(them.len()).max(1);
    let lowest = 0.1f64;
    let highest = us
        .iter()
        .chain(&them)
        .copied()
        .fold(10.0f64, f64::max)
        .log10()
        .ceil();
    let y = |v: f64| {
        let share = (v.max(lowest).log10() - lowest.log10()) / (highest - lowest.log10());
        top + (h - top - bottom) * (1.0 - share)
    };
    let slot = (w - left - right) / n as f64;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="22" text-anchor="middle" font-size="14">Longest connect wait in each restart under load (ms, log scale)</text>
"#,
        w / 2.0
    );
    let mut decade = lowest.log10().round() as i32;
    while f64::from(decade) <= highest {
        let v = 10f64.powi(decade);
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{v}</text>"##,
            w - right,
            y(v),
            y(v),
            left - 6.0,
            y(v) + 4.0
        );
        decade += 1;
    }
    for i in 0..n {
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            left + slot * (i as f64 + 0.5),
            h - bottom + 18.0,
            i + 1
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">restart</text>"#,
        left + (w - left - right) / 2.0,
        h - bottom + 36.0
    );
    let bar = slot * 0.35;
    for (offset, values, colour, label, label_y) in [
        (0.12, &us, "#1f77b4", "gateway (SIGHUP handoff)", 50.0),
        (0.53, &them, "#d62728", "node reference (stop + start)", 68.0),
    ] {
        for (i, v) in values.iter().enumerate() {
            let x = left + slot * (i as f64 + offset);
            let _ = writeln!(
                svg,
                r#"<rect x="{x:.1}" y="{:.1}" width="{bar:.1}" height="{:.1}" fill="{colour}"><title>{v:.2} ms</title></rect>"#,
                y(*v),
                (h - bottom - y(*v)).max(0.0)
            );
        }
        let _ = writeln!(
            svg,
            r#"<rect x="{}" y="{}" width="12" height="12" fill="{colour}"/><text x="{}" y="{}">{label}</text>"#,
            left + 10.0,
            label_y - 10.0,
            left + 28.0,
            label_y
        );
    }
    svg.push_str("</svg>\n");
    svg
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
