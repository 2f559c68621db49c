//! Writing the results: a Markdown table, an SVG chart of the restart gap, one of the
//! restarts under load and one of the sessions under restart.

use std::fmt::Write as _;

use std::time::Duration;

use crate::restart_load::LoadRun;
use crate::session_move::{BUSY, IDLE, PACE, SessionRestart, SessionRun};
use crate::startup::FailFast;
use crate::stats::{median, ms, percentile};
use crate::tls::{CYCLE_CLIENTS, Medians, SESSION_CLIENTS, SESSIONS, THROUGHPUT_GOAL, TlsRun};

/// A refused start beside its floors: medians of runs interleaved with each other.
pub struct FailFastFigures {
    pub fail_fast_ms: f64,
    /// Exec to the refusal's first line on stderr, in the same runs as `fail_fast_ms`.
    pub first_line_ms: f64,
    /// The bind-and-exit floor.
    pub floor_ms: f64,
    /// The bind + `/healthz` probe + exit floor: the same work as a refused start.
    pub probe_floor_ms: f64,
}

impl FailFastFigures {
    pub fn of(samples: &FailFast) -> Self {
        Self {
            fail_fast_ms: ms(median(&samples.target)),
            first_line_ms: ms(median(&samples.first_line)),
            floor_ms: ms(median(&samples.floor)),
            probe_floor_ms: ms(median(&samples.probe_floor)),
        }
    }
}

/// One target's figures.
pub struct Figures {
    pub name: &'static str,
    pub fail_fast: FailFastFigures,
    pub ready_ms: f64,
    /// (clients, median gap ms, share of clean goodbyes)
    pub gaps: Vec<(usize, f64, f64)>,
    /// Restarts under paced load: the goals' figures.
    pub restart_paced: LoadRun,
    /// Restarts under flat-out load: the stress figures.
    pub restart_flat_out: LoadRun,
    /// Restart signal to the new process serving, median, with no clients.
    pub idle_serving_ms: f64,
    /// (connections, requests/s, p50 ms, p99 ms)
    pub throughput: Vec<(usize, f64, f64, f64)>,
    pub idle_rss_mib: f64,
    pub per_connection_kib: f64,
    /// Idle and busy WebSocket sessions through restarts (issue 19).
    pub sessions: SessionRun,
}

/// The restart-under-load figures of one run, as reported.
#[derive(Debug)]
pub struct RestartLoadSummary {
    pub clients: usize,
    /// Each client's request period, in ms; `None`: back to back.
    pub pace_ms: Option<u128>,
    pub restarts: usize,
    pub served: usize,
    pub failed: usize,
    pub first_failure: Option<String>,
    pub first_reset: Option<String>,
    pub refused_per_restart: f64,
    pub reset_per_restart: f64,
    pub goodbyes_per_restart: f64,
    /// p99 over the restarts of each restart's longest connect wait.
    pub longest_wait_p99_ms: f64,
    pub longest_wait_median_ms: f64,
    /// p99 over every request that overlapped a restart.
    pub wait_p99_ms: f64,
    /// The same as `longest_wait_*` in steady windows before the restarts.
    pub steady_longest_wait_p99_ms: f64,
    pub steady_longest_wait_median_ms: f64,
    pub serving_median_ms: f64,
    pub serving_max_ms: f64,
}

impl RestartLoadSummary {
    /// How the clients were driven, for a table row.
    fn load(&self) -> String {
        match self.pace_ms {
            Some(pace) => format!("{} clients, one request each per {pace} ms", self.clients),
            None => format!("{} clients flat out", self.clients),
        }
    }

    pub fn of(run: &LoadRun) -> Self {
        let per_restart = |n: usize| n as f64 / run.restarts.max(1) as f64;
        Self {
            clients: run.load.clients,
            pace_ms: run.load.pace.map(|p| p.as_millis()),
            restarts: run.restarts,
            served: run.served,
            failed: run.failed,
            first_failure: run.first_failure.clone(),
            first_reset: run.first_reset.clone(),
            refused_per_restart: per_restart(run.refused),
            reset_per_restart: per_restart(run.reset),
            goodbyes_per_restart: per_restart(run.goodbyes),
            longest_wait_p99_ms: ms(percentile(&run.longest_wait, 0.99)),
            longest_wait_median_ms: ms(median(&run.longest_wait)),
            wait_p99_ms: ms(percentile(&run.waits_during_restarts, 0.99)),
            steady_longest_wait_p99_ms: ms(percentile(&run.longest_wait_steady, 0.99)),
            steady_longest_wait_median_ms: ms(median(&run.longest_wait_steady)),
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
    sessions_svg: &str,
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
         whose processes ran beside this run: expect ±20 % and more; \
         [performance.md](performance.md) lists every run of the day.\n"
    );
    let _ = writeln!(
        out,
        "| figure | gateway | node reference | ratio | target | met |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    let (us, them) = (&ours.fail_fast, &theirs.fail_fast);
    row(
        &mut out,
        "fail-fast: exec → exit of a refused start",
        us.fail_fast_ms,
        them.fail_fast_ms,
        "ms",
        "≤ 3 ms",
        Some(us.fail_fast_ms <= 3.0),
    );
    row(
        &mut out,
        "fail-fast: exec → the refusal's first line on stderr (same runs)",
        us.first_line_ms,
        them.first_line_ms,
        "ms",
        "",
        None,
    );
    row(
        &mut out,
        "floor: bind refused + `/healthz` probe + exit (`bind_floor.c --probe`), same runs",
        us.probe_floor_ms,
        them.probe_floor_ms,
        "ms",
        "",
        None,
    );
    let (our_over_probe, their_over_probe) = (
        us.fail_fast_ms / us.probe_floor_ms,
        them.fail_fast_ms / them.probe_floor_ms,
    );
    let _ = writeln!(
        out,
        "| fail-fast ÷ bind + probe floor | {our_over_probe:.2}× | {their_over_probe:.2}× | | ≤ 1.5× | {} |",
        verdict(our_over_probe <= 1.5)
    );
    row(
        &mut out,
        "floor: bind refused + exit, no probe (`bind_floor.c`), same runs",
        us.floor_ms,
        them.floor_ms,
        "ms",
        "",
        None,
    );
    let _ = writeln!(
        out,
        "| fail-fast ÷ bind-only floor | {:.2}× | {:.2}× | | | |",
        us.fail_fast_ms / us.floor_ms,
        them.fail_fast_ms / them.floor_ms,
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
    out.push_str(&sessions_section(
        &ours.sessions,
        &theirs.sessions,
        sessions_svg,
    ));
    out
}

fn verdict(met: bool) -> &'static str {
    if met { "yes" } else { "**no**" }
}

fn restart_load_rows(out: &mut String, ours: &Figures, theirs: &Figures) {
    for (our_run, their_run, goals) in [
        (&ours.restart_paced, &theirs.restart_paced, true),
        (&ours.restart_flat_out, &theirs.restart_flat_out, false),
    ] {
        let (us, them) = (
            RestartLoadSummary::of(our_run),
            RestartLoadSummary::of(their_run),
        );
        let load = us.load();
        let _ = writeln!(
            out,
            "| restarts under load ({load}): refused connections per restart | {:.1} | {:.1} | | 0 (gateway) | {} |",
            us.refused_per_restart,
            them.refused_per_restart,
            verdict(us.refused_per_restart == 0.0)
        );
        let _ = writeln!(
            out,
            "| reset connections per restart ({load}) | {:.1} | {:.1} | | 0 (gateway) | {} |",
            us.reset_per_restart,
            them.reset_per_restart,
            verdict(us.reset_per_restart == 0.0)
        );
        row(
            out,
            &format!(
                "longest connect wait during a restart, p99 of {} ({load})",
                us.restarts
            ),
            us.longest_wait_p99_ms,
            them.longest_wait_p99_ms,
            "ms",
            if goals { "≤ 5 ms" } else { "" },
            goals.then_some(us.longest_wait_p99_ms <= 5.0),
        );
        row(
            out,
            &format!("the same in steady windows before the restarts ({load})"),
            us.steady_longest_wait_p99_ms,
            them.steady_longest_wait_p99_ms,
            "ms",
            "",
            None,
        );
        row(
            out,
            &format!("restart signal → new process serving, median ({load})"),
            us.serving_median_ms,
            them.serving_median_ms,
            "ms",
            if goals { "≤ 10 ms" } else { "" },
            goals.then_some(us.serving_median_ms <= 10.0),
        );
        let _ = writeln!(
            out,
            "| requests served / other failures ({load}) | {} / {} | {} / {} | | 0 failures | {} |",
            us.served,
            us.failed,
            them.served,
            them.failed,
            verdict(us.failed == 0)
        );
    }
    row(
        out,
        "restart signal → new process serving, median, no clients",
        ours.idle_serving_ms,
        theirs.idle_serving_ms,
        "ms",
        "",
        None,
    );
}

fn restart_load_section(out: &mut String, ours: &Figures, theirs: &Figures, load_svg: &str) {
    let paced = RestartLoadSummary::of(&ours.restart_paced);
    let _ = writeln!(out, "## Restarts under load\n");
    let _ = writeln!(
        out,
        "The gateway restarts by `SIGHUP` (the handoff of docs/reference.md#restart); the reference \
         by SIGTERM, waiting for its exit, and starting it again, the only restart it has. {} times \
         each, {} ms of load apart, while {} clients loop, each alternating connect + `GET /healthz` \
         and connect + WebSocket upgrade + `connect` + `health` + close: *paced* (each client starts \
         a request at most every {} ms, well under the capacity of either server, so that a wait \
         shows what the restart costs) and *flat out* (back to back: both servers are saturated and \
         every wait is mostly queueing). A *connect wait* runs from a request's first `connect()` to \
         the server's first answer (HTTP response, or WebSocket `101`); a refused or reset connect \
         is retried every {} ms, and the request counts once as refused or reset however many \
         retries it took. A restart lasts from the signal until the new process answers `/healthz` \
         with its own pid and the old one has exited. The *steady window* of a restart is as long \
         (at most 300 ms), and ends {} ms before its signal: the same load, no restart.\n",
        paced.restarts,
        crate::restart_load::SETTLE.as_millis(),
        paced.clients,
        paced.pace_ms.unwrap_or(0),
        crate::restart_load::RETRY.as_millis(),
        crate::restart_load::STEADY_BEFORE.as_millis(),
    );
    let summaries = [
        RestartLoadSummary::of(&ours.restart_paced),
        RestartLoadSummary::of(&ours.restart_flat_out),
        RestartLoadSummary::of(&theirs.restart_paced),
        RestartLoadSummary::of(&theirs.restart_flat_out),
    ];
    let _ = writeln!(
        out,
        "| | gateway, paced | gateway, flat out | reference, paced | reference, flat out |\n|---|---|---|---|---|"
    );
    let mut line = |label: &str, cell: &dyn Fn(&RestartLoadSummary) -> String| {
        let cells: Vec<String> = summaries.iter().map(cell).collect();
        let _ = writeln!(out, "| {label} | {} |", cells.join(" | "));
    };
    line("refused / reset connections per restart", &|s| {
        format!("{:.1} / {:.1}", s.refused_per_restart, s.reset_per_restart)
    });
    line("longest connect wait per restart, median / p99", &|s| {
        format!(
            "{:.2} / {:.2} ms",
            s.longest_wait_median_ms, s.longest_wait_p99_ms
        )
    });
    line("the same in the steady windows", &|s| {
        format!(
            "{:.2} / {:.2} ms",
            s.steady_longest_wait_median_ms, s.steady_longest_wait_p99_ms
        )
    });
    line("connect wait p99, every request during a restart", &|s| {
        format!("{:.2} ms", s.wait_p99_ms)
    });
    line("signal → new process serving, median / max", &|s| {
        format!("{:.2} / {:.2} ms", s.serving_median_ms, s.serving_max_ms)
    });
    line(
        "WebSocket sessions ended by the restart notice per restart (1012 / 1001)",
        &|s| format!("{:.1}", s.goodbyes_per_restart),
    );
    line("requests served / other failures", &|s| {
        format!("{} / {}", s.served, s.failed)
    });
    for (name, summary) in [
        "gateway, paced",
        "gateway, flat out",
        "reference, paced",
        "reference, flat out",
    ]
    .iter()
    .zip(&summaries)
    {
        if let Some(failure) = &summary.first_failure {
            let _ = writeln!(out, "\nFirst other failure ({name}): `{failure}`");
        }
        if let Some(reset) = &summary.first_reset {
            let _ = writeln!(out, "\nFirst reset ({name}): {reset}");
        }
    }
    let _ = writeln!(
        out,
        "\nThe longest connect wait of each restart, paced load:\n\n![restarts under load]({load_svg})\n"
    );
}

/// Bars of each restart's longest connect wait, both targets, on a log scale.
pub fn restart_load_svg(ours: &Figures, theirs: &Figures) -> String {
    let (w, h, left, right, top, bottom) = (640.0, 360.0, 70.0, 20.0, 40.0, 50.0);
    let millis =
        |waits: &[std::time::Duration]| -> Vec<f64> { waits.iter().map(|d| ms(*d)).collect() };
    let us = millis(&ours.restart_paced.longest_wait);
    let steady = millis(&ours.restart_paced.longest_wait_steady);
    let them = millis(&theirs.restart_paced.longest_wait);
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
<text x="{}" y="22" text-anchor="middle" font-size="14">Longest connect wait in each restart, paced load (ms, log scale)</text>
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
    let _ = writeln!(
        svg,
        r##"<line x1="{left}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="#2ca02c" stroke-dasharray="6 4"/><text x="{}" y="{:.1}" text-anchor="end" fill="#2ca02c">goal: 5 ms</text>"##,
        w - right,
        y(5.0),
        y(5.0),
        w - right - 4.0,
        y(5.0) - 4.0
    );
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
    let bar = slot * 0.26;
    for (offset, values, colour, label, label_y) in [
        (
            0.1,
            &steady,
            "#aec7e8",
            "gateway, steady window before the restart",
            50.0,
        ),
        (0.37, &us, "#1f77b4", "gateway, SIGHUP handoff", 68.0),
        (0.64, &them, "#d62728", "node reference, stop + start", 86.0),
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

/// The sessions-under-restart section (issue 19): a table of each figure, median and
/// worst over the restarts, for both targets with the goals, then the chart.
pub fn sessions_section(ours: &SessionRun, theirs: &SessionRun, svg: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n## Sessions under restart (issue 19)\n\n{IDLE} idle WebSocket sessions (past `connect`) and {BUSY} busy ones, each busy one \
         sending a `health` request with a unique id every {} ms; {} restarts for the gateway (SIGHUP: the \
         sessions move) and {} for the reference (stop + start: it closes every session). A closed \
         session reconnects at once and resends what it had not been answered (counted lost once; its \
         wait runs from the first send). Each cell: median / worst of the restarts.\n",
        PACE.as_millis(),
        ours.restarts.len(),
        theirs.restarts.len(),
    );
    let _ = writeln!(
        out,
        "| per restart | gateway | node reference | goal | met |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|");
    let count = |run: &SessionRun, f: fn(&SessionRestart) -> usize| -> (usize, usize) {
        let mut v: Vec<usize> = run.restarts.iter().map(f).collect();
        v.sort_unstable();
        (
            v.get(v.len() / 2).copied().unwrap_or(0),
            v.last().copied().unwrap_or(0),
        )
    };
    let time = |run: &SessionRun, f: fn(&SessionRestart) -> Duration| -> (f64, f64) {
        let v: Vec<Duration> = run.restarts.iter().map(f).collect();
        (ms(median(&v)), ms(percentile(&v, 1.0)))
    };
    for (figure, f, goal) in [
        (
            "sessions closed",
            (|r: &SessionRestart| r.closed) as fn(&SessionRestart) -> usize,
            Some(0),
        ),
        ("sessions told `restarted`", |r| r.told_restarted, None),
        ("requests lost", |r| r.lost, Some(0)),
        ("requests answered twice", |r| r.duplicated, Some(0)),
    ] {
        let (us, them) = (count(ours, f), count(theirs, f));
        let (goal_text, met) = match goal {
            Some(g) => (format!("{g}"), verdict(us.1 <= g)),
            None => (
                format!("{} (all)", IDLE + BUSY),
                verdict(us.0 >= IDLE + BUSY),
            ),
        };
        let _ = writeln!(
            out,
            "| {figure} | {} / {} | {} / {} | {goal_text} | {met} |",
            us.0, us.1, them.0, them.1
        );
    }
    let told = |run: &SessionRun| -> String {
        let v: Vec<Duration> = run
            .restarts
            .iter()
            .filter_map(|r| r.last_restarted)
            .collect();
        if v.is_empty() {
            "none told".to_owned()
        } else {
            format!("{:.1} / {:.1} ms", ms(median(&v)), ms(percentile(&v, 1.0)))
        }
    };
    let our_told: Vec<Duration> = ours
        .restarts
        .iter()
        .filter_map(|r| r.last_restarted)
        .collect();
    let _ = writeln!(
        out,
        "| signal → last session told `restarted` | {} | {} | ≤ 100 ms | {} |",
        told(ours),
        told(theirs),
        verdict(our_told.len() == ours.restarts.len() && ms(percentile(&our_told, 1.0)) <= 100.0)
    );
    for (figure, f, goal) in [
        (
            "signal → new process serves",
            (|r: &SessionRestart| r.serving) as fn(&SessionRestart) -> Duration,
            None,
        ),
        (
            "signal → last session back (told `restarted`, or reconnected)",
            |r| r.last_back,
            None,
        ),
        (
            "longest request wait across the restart",
            |r| r.longest_wait,
            None,
        ),
        (
            "p99 of request waits in the restart's window",
            |r| r.p99_wait,
            Some(20.0),
        ),
        (
            "the same p99 in as long a window just before the signal (no restart)",
            |r| r.steady_p99_wait,
            None,
        ),
        (
            "new process serves → old process gone",
            |r| r.old_gone,
            Some(200.0),
        ),
    ] {
        let (us, them) = (time(ours, f), time(theirs, f));
        let (goal_text, met) = match goal {
            Some(g) => (format!("≤ {g} ms"), verdict(us.1 <= g)),
            None => (String::new(), ""),
        };
        let _ = writeln!(
            out,
            "| {figure} | {:.1} / {:.1} ms | {:.1} / {:.1} ms | {goal_text} | {met} |",
            us.0, us.1, them.0, them.1
        );
    }
    let _ = writeln!(
        out,
        "\nRequests answered: {} (gateway), {} (reference); unanswered when the run ended: {} and {}.\n",
        ours.answered, theirs.answered, ours.unanswered_at_end, theirs.unanswered_at_end
    );
    let _ = writeln!(
        out,
        "Per restart, the longest request wait and the time to the last session back:\n\n![sessions under restart]({svg})\n"
    );
    out
}

/// Bars per restart, both targets, on a log scale: the longest request wait and the
/// signal to the last session back (told `restarted`, or reconnected).
pub fn sessions_svg(ours: &SessionRun, theirs: &SessionRun) -> String {
    let (w, h, left, right, top, bottom) = (640.0, 380.0, 70.0, 20.0, 110.0, 50.0);
    let series = |run: &SessionRun, f: fn(&SessionRestart) -> Duration| -> Vec<f64> {
        run.restarts.iter().map(|r| ms(f(r))).collect()
    };
    let our_wait = series(ours, |r| r.longest_wait);
    let our_back = series(ours, |r| r.last_back);
    let their_wait = series(theirs, |r| r.longest_wait);
    let their_back = series(theirs, |r| r.last_back);
    let n = our_wait.len().max(their_wait.len()).max(1);
    let lowest = 0.1f64;
    let highest = our_wait
        .iter()
        .chain(&our_back)
        .chain(&their_wait)
        .chain(&their_back)
        .copied()
        .fold(100.0f64, f64::max)
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
<text x="{}" y="22" text-anchor="middle" font-size="14">Sessions under restart: {} sessions, per restart (ms, log scale)</text>
"#,
        w / 2.0,
        IDLE + BUSY
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
    let _ = writeln!(
        svg,
        r##"<line x1="{left}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="#2ca02c" stroke-dasharray="6 4"/><text x="{}" y="{:.1}" text-anchor="end" fill="#2ca02c">goal: every session told in 100 ms</text>"##,
        w - right,
        y(100.0),
        y(100.0),
        w - right - 4.0,
        y(100.0) - 4.0
    );
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
    let bar = slot * 0.2;
    for (offset, values, colour, label, label_y) in [
        (
            0.1,
            &our_wait,
            "#1f77b4",
            "gateway (SIGHUP, sessions move): longest request wait",
            50.0,
        ),
        (
            0.3,
            &our_back,
            "#aec7e8",
            "gateway: signal → last session told restarted",
            68.0,
        ),
        (
            0.5,
            &their_wait,
            "#d62728",
            "node reference (stop + start): longest request wait",
            86.0,
        ),
        (
            0.7,
            &their_back,
            "#ff9896",
            "node reference: signal → last session reconnected",
            104.0,
        ),
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

/// The heading of the TLS section, by which `--tls-only` finds it in the report.
pub const TLS_HEADING: &str = "## TLS beside plaintext (issue 20)";

/// The TLS-beside-plaintext section (issue 20): new connections, established
/// sessions and memory per session, `ws://` and `wss://` from the same run.
pub fn tls_section(run: &TlsRun, source: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{TLS_HEADING}\n\n{source} One gateway without TLS and one with `--tls-cert`/`--tls-key` \
         (ECDSA P-256 leaf and private CA made by the bench with rcgen; negotiated: {}), both the \
         same release binary, measured turn about: {} rounds, \
         each window {:.0} s after a fifth of it as warm-up, the order turned each round; medians \
         over the rounds. Clients and servers share the machine's cores.\n",
        run.negotiated,
        run.rounds,
        run.window.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "| figure | `ws://` | `wss://` | `wss://` ÷ `ws://` | goal | met |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for (i, clients) in CYCLE_CLIENTS.iter().enumerate() {
        let (plain, tls, resumed) = (
            Medians::of_cycles(&run.plain.cycles[i]),
            Medians::of_cycles(&run.tls.cycles[i]),
            Medians::of_cycles(&run.resumed.cycles[i]),
        );
        let loops = if *clients == 1 {
            "1 client".to_owned()
        } else {
            format!("{clients} clients")
        };
        for (what, tls) in [("full handshake", tls), ("resumed session", resumed)] {
            let _ = writeln!(
                out,
                "| new connections per second ({what}), {loops} in a loop | {:.0} | {:.0} | {:.2}× |  |  |",
                plain.per_sec,
                tls.per_sec,
                tls.per_sec / plain.per_sec
            );
            let _ = writeln!(
                out,
                "| time per new connection, p50 / p99 ({what}), {loops} | {:.2} / {:.2} ms | {:.2} / {:.2} ms | {:.2}× |  |  |",
                plain.p50_ms,
                plain.p99_ms,
                tls.p50_ms,
                tls.p99_ms,
                tls.p50_ms / plain.p50_ms
            );
            let _ = writeln!(
                out,
                "| gateway CPU per new connection ({what}), {loops} | {:.0} µs | {:.0} µs | {:.2}× |  |  |",
                plain.server_cpu_us,
                tls.server_cpu_us,
                tls.server_cpu_us / plain.server_cpu_us
            );
        }
    }
    for (i, clients) in SESSION_CLIENTS.iter().enumerate() {
        let (plain, tls) = (
            Medians::of_sessions(&run.plain.sessions[i]),
            Medians::of_sessions(&run.tls.sessions[i]),
        );
        let ratio = tls.per_sec / plain.per_sec;
        let plural = if *clients == 1 { "" } else { "s" };
        let _ = writeln!(
            out,
            "| `health` request/response, {clients} established session{plural} | {:.0} req/s | {:.0} req/s | {ratio:.2}× | ≥ {THROUGHPUT_GOAL}× | {} |",
            plain.per_sec,
            tls.per_sec,
            verdict(ratio >= THROUGHPUT_GOAL)
        );
        let _ = writeln!(
            out,
            "| `health` latency p50 / p99, {clients} session{plural} | {:.3} / {:.3} ms | {:.3} / {:.3} ms | {:.2}× |  |  |",
            plain.p50_ms,
            plain.p99_ms,
            tls.p50_ms,
            tls.p99_ms,
            tls.p50_ms / plain.p50_ms
        );
        let _ = writeln!(
            out,
            "| gateway CPU per request, {clients} session{plural} | {:.1} µs | {:.1} µs | {:.2}× |  |  |",
            plain.server_cpu_us,
            tls.server_cpu_us,
            tls.server_cpu_us / plain.server_cpu_us
        );
    }
    let _ = writeln!(
        out,
        "| RSS with no clients (a fresh gateway) | {:.2} MiB | {:.2} MiB | {:.2}× |  |  |",
        run.plain.idle_rss_mib,
        run.tls.idle_rss_mib,
        run.tls.idle_rss_mib / run.plain.idle_rss_mib
    );
    let _ = writeln!(
        out,
        "| RSS per idle session past `connect` ({SESSIONS} open) | {:.2} KiB | {:.2} KiB | {:.2}× |  |  |",
        run.plain.per_session_kib,
        run.tls.per_session_kib,
        run.tls.per_session_kib / run.plain.per_session_kib
    );
    let _ = writeln!(
        out,
        "\nA new connection is: TCP connect, the TLS handshake (verifying the chain; *full*: the \
         client keeps no session, *resumed*: the rustls client's default, resuming from a ticket of \
         an earlier connection), the upgrade, `connect` → `hello-ok`, one `health`, and the close \
         handshake to the end of the stream. Request/response: each session sends its next \
         `health` when the previous answer arrived. Memory: RSS once every session is past \
         `connect` and 500 ms settled, minus the RSS before, over the number of sessions. Gateway CPU: \
         its user + system time from /proc over the window (10 ms ticks) over the connections or \
         requests of the window; the clients' own TLS work (the chain verified at each full \
         handshake) runs on the same cores and is not in it.\n"
    );
    out
}

/// `document` with its TLS section replaced by `section` (up to the next `## `
/// heading), or with `section` added at its end when it has none.
pub fn splice_tls_section(document: &str, section: &str) -> String {
    let section = section.trim_matches('\n');
    let Some(start) = document.find(TLS_HEADING) else {
        return format!("{}\n\n{section}\n", document.trim_end_matches('\n'));
    };
    let after = start + TLS_HEADING.len();
    let end = document[after..]
        .find("\n## ")
        .map_or(document.len(), |i| after + i + 1);
    let rest = &document[end..];
    let separator = if rest.is_empty() { "\n" } else { "\n\n" };
    format!("{}{section}{separator}{rest}", &document[..start])
}

/// The `## ` sections of `document`, each from its heading to the next one.
fn sections(document: &str) -> Vec<&str> {
    let mut starts: Vec<usize> = document
        .match_indices("\n## ")
        .map(|(i, _)| i + 1)
        .collect();
    if document.starts_with("## ") {
        starts.insert(0, 0);
    }
    starts
        .iter()
        .enumerate()
        .map(|(n, &start)| &document[start..starts.get(n + 1).copied().unwrap_or(document.len())])
        .collect()
}

/// `generated`, then every `## ` section of `existing` (the report as it was) whose
/// heading `generated` does not have: a full run replaces what it measures and keeps
/// the sections written by hand or by a single-purpose run (`--fail-fast-only`...).
pub fn keeping_other_sections(generated: &str, existing: &str) -> String {
    let heading = |section: &str| section.lines().next().unwrap_or_default().to_owned();
    let ours: Vec<String> = sections(generated).into_iter().map(heading).collect();
    let kept: Vec<&str> = sections(existing)
        .into_iter()
        .filter(|section| !ours.contains(&heading(section)))
        .map(|section| section.trim_end_matches('\n'))
        .collect();
    if kept.is_empty() {
        return generated.to_owned();
    }
    format!(
        "{}\n\n{}\n",
        generated.trim_end_matches('\n'),
        kept.join("\n\n")
    )
}

#[cfg(test)]
mod tests {
    use super::{TLS_HEADING, keeping_other_sections, splice_tls_section};

    #[test]
    fn a_full_run_keeps_the_sections_it_does_not_write() {
        let existing = "# Benchmarks\n\nold intro\n\n## Measured\n\nold\n\n## By hand\n\nkept\n";
        let generated = "# Benchmarks\n\nnew intro\n\n## Measured\n\nnew\n";
        assert_eq!(
            keeping_other_sections(generated, existing),
            "# Benchmarks\n\nnew intro\n\n## Measured\n\nnew\n\n## By hand\n\nkept\n"
        );
        assert_eq!(keeping_other_sections(generated, ""), generated);
    }

    #[test]
    fn the_tls_section_is_added_once_then_replaced_in_place() {
        let document = "# Benchmarks\n\ntext\n\n## Later\n\nmore\n";
        let first = splice_tls_section(document, &format!("\n{TLS_HEADING}\n\nold\n"));
        assert_eq!(first, format!("{}\n{TLS_HEADING}\n\nold\n", document));
        let middle = format!("# B\n\n{TLS_HEADING}\n\nold\n\n## Later\n\nmore\n");
        let second = splice_tls_section(&middle, &format!("\n{TLS_HEADING}\n\nnew\n"));
        assert_eq!(
            second,
            format!("# B\n\n{TLS_HEADING}\n\nnew\n\n## Later\n\nmore\n")
        );
    }
}
