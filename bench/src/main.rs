//! `gateway-bench`: every figure of the benchmark suite, for our gateway and for the
//! Node reference side by side in one run; writes `docs/benchmarks.md` and the chart.
//!
//! Run it with `bash bench/run` (builds what it needs first).

mod client;
mod floor;
mod memory;
mod report;
mod restart_gap;
mod restart_load;
mod session_move;
mod startup;
mod stats;
mod target;
mod throughput;
mod tls;

use std::path::PathBuf;
use std::time::Duration;

use floor::Floor;
use report::{FailFastFigures, Figures, Machine};
use restart_load::Load;
use stats::{median, ms};
use target::Target;

struct Options {
    gateway: PathBuf,
    node: PathBuf,
    reference: PathBuf,
    /// The floors' C source (bind and exit; bind + probe and exit), compiled beside
    /// the gateway binary.
    floor_source: PathBuf,
    out: PathBuf,
    quick: bool,
    /// Measure the gateway only and print its figures (for tuning); writes nothing.
    gateway_only: bool,
    /// Measure only the gateway's refused start beside its floors and print the
    /// figures (for tuning start-up); writes nothing.
    fail_fast_only: bool,
    /// Measure only the sessions under restart, both targets; print the report's
    /// section and write its chart (not the report).
    sessions_only: bool,
    /// Measure only TLS beside plaintext, print the report's section and put it in
    /// the report in place of its last one (or at its end).
    tls_only: bool,
    /// Restarts per restart-under-load run (default 10, or 3 with `--quick`).
    restarts: Option<usize>,
    /// Only drive `health` load at a server already on this port (for profiling).
    load_port: Option<u16>,
}

fn parse_options() -> Options {
    let mut options = Options {
        gateway: "target/release/gateway".into(),
        node: "node".into(),
        reference: "bench/reference/server.js".into(),
        floor_source: "bench/floor/bind_floor.c".into(),
        out: "docs/benchmarks.md".into(),
        quick: false,
        gateway_only: false,
        fail_fast_only: false,
        sessions_only: false,
        tls_only: false,
        load_port: None,
        restarts: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .map(PathBuf::from)
                .unwrap_or_else(|| usage(&arg))
        };
        match arg.as_str() {
            "--gateway" => options.gateway = value(),
            "--node" => options.node = value(),
            "--reference" => options.reference = value(),
            "--floor-source" => options.floor_source = value(),
            "--out" => options.out = value(),
            "--quick" => options.quick = true,
            "--gateway-only" => options.gateway_only = true,
            "--fail-fast-only" => options.fail_fast_only = true,
            "--sessions-only" => options.sessions_only = true,
            "--tls-only" => options.tls_only = true,
            "--restarts" => {
                options.restarts = Some(
                    value()
                        .to_str()
                        .and_then(|n| n.parse().ok())
                        .filter(|n| *n > 0)
                        .unwrap_or_else(|| usage("--restarts")),
                );
            }
            "--load-port" => {
                options.load_port = Some(
                    value()
                        .to_str()
                        .and_then(|p| p.parse().ok())
                        .unwrap_or_else(|| usage("--load-port")),
                );
            }
            _ => usage(&arg),
        }
    }
    options
}

fn usage(arg: &str) -> ! {
    eprintln!(
        "gateway-bench: bad argument {arg}\nusage: gateway-bench [--gateway PATH] [--node PATH] [--reference server.js] [--floor-source FILE.c] [--out FILE.md] [--quick] [--gateway-only] [--fail-fast-only] [--sessions-only] [--tls-only] [--restarts N] [--load-port PORT]"
    );
    std::process::exit(2);
}

async fn figures(target: &Target, floor: &Floor, options: &Options) -> Figures {
    let quick = options.quick;
    let name = target.name();
    let runs = if quick { 20 } else { 100 };
    eprintln!("[{name}] fail-fast beside its two floors, and ready ({runs} runs each)");
    let fail_fast = FailFastFigures::of(&startup::fail_fast(target, floor, runs));
    let ready_ms = ms(median(&startup::ready(target, runs)));

    let gap_runs = if quick { 1 } else { 5 };
    let mut gaps = Vec::new();
    for clients in [100, 1000, 5000] {
        eprintln!("[{name}] restart gap with {clients} clients ({gap_runs} runs)");
        let mut samples = Vec::new();
        let mut clean = 0;
        let mut total = 0;
        for _ in 0..gap_runs {
            let run = restart_gap::measure(target, clients).await;
            samples.push(run.gap);
            clean += run.clean_goodbyes;
            total += run.clients;
        }
        gaps.push((clients, ms(median(&samples)), clean as f64 / total as f64));
    }

    let restarts = options.restarts.unwrap_or(if quick { 3 } else { 10 });
    let paced = Load {
        clients: 100,
        pace: Some(Duration::from_millis(20)),
    };
    let flat_out = Load {
        clients: 100,
        pace: None,
    };
    eprintln!("[{name}] {restarts} restarts under paced load ({paced:?})");
    let restart_paced = restart_load::measure(target, paced, restarts).await;
    eprintln!("[{name}] {restarts} restarts under flat-out load ({flat_out:?})");
    let restart_flat_out = restart_load::measure(target, flat_out, restarts).await;
    eprintln!("[{name}] {restarts} restarts with no load");
    let idle = Load {
        clients: 0,
        pace: None,
    };
    let idle_serving_ms = ms(median(
        &restart_load::measure(target, idle, restarts)
            .await
            .serving_after_signal,
    ));

    let duration = Duration::from_secs(if quick { 1 } else { 3 });
    let mut rates = Vec::new();
    for connections in [1, 64] {
        eprintln!("[{name}] health throughput over {connections} connection(s)");
        let t = throughput::measure(target, connections, duration).await;
        rates.push((connections, t.requests_per_sec, ms(t.p50), ms(t.p99)));
    }

    eprintln!("[{name}] memory with 2000 idle connections");
    let memory = memory::measure(target, 2000).await;
    let sessions = sessions(target, quick).await;
    Figures {
        name,
        fail_fast,
        ready_ms,
        gaps,
        restart_paced,
        restart_flat_out,
        idle_serving_ms,
        throughput: rates,
        idle_rss_mib: memory.idle_rss as f64 / (1024.0 * 1024.0),
        per_connection_kib: memory.per_connection / 1024.0,
        sessions,
    }
}

/// Restarts with sessions open: 5, or 2 with `--quick`.
async fn sessions(target: &Target, quick: bool) -> session_move::SessionRun {
    let restarts = if quick { 2 } else { 5 };
    eprintln!(
        "[{}] {restarts} restarts with {} idle and {} busy sessions",
        target.name(),
        session_move::IDLE,
        session_move::BUSY
    );
    session_move::measure(target, restarts).await
}

/// TLS beside plaintext: 3 rounds of 3 s windows, or 1 of 1 s with `--quick`.
async fn tls_run(options: &Options) -> tls::TlsRun {
    let (rounds, window) = if options.quick { (1, 1) } else { (3, 3) };
    tls::measure(&options.gateway, rounds, Duration::from_secs(window)).await
}

/// `--tls-only`: the TLS section, printed and put in the report in place of its last one.
async fn tls_only(options: &Options) {
    let run = tls_run(options).await;
    let command = if options.quick {
        "target/release/gateway-bench --tls-only --quick"
    } else {
        "target/release/gateway-bench --tls-only"
    };
    let section = report::tls_section(
        &run,
        &format!(
            "Not from the run above: `{command}` ({} cores; this section is put in place by that \
             command, the rest of the page is left as it was).",
            Machine::read().cores
        ),
    );
    print!("{section}");
    let document = std::fs::read_to_string(&options.out).unwrap_or_default();
    if let Err(error) = std::fs::write(
        &options.out,
        report::splice_tls_section(&document, &section),
    ) {
        eprintln!("gateway-bench: cannot write the report: {error}");
        std::process::exit(1);
    }
    eprintln!("wrote the TLS section of {}", options.out.display());
}

#[tokio::main]
async fn main() {
    let options = parse_options();
    if let Some(port) = options.load_port {
        for connections in [1, 64] {
            let t = throughput::load(port, connections, Duration::from_secs(5)).await;
            println!(
                "{connections} connection(s): {:.0} req/s, p50 {:.3} ms, p99 {:.3} ms",
                t.requests_per_sec,
                ms(t.p50),
                ms(t.p99)
            );
        }
        return;
    }
    if options.tls_only {
        return tls_only(&options).await;
    }
    let floor_binary = options.gateway.with_file_name("bind-floor");
    let floor = Floor::compile(&options.floor_source, &floor_binary).unwrap_or_else(|error| {
        eprintln!("gateway-bench: cannot build the fail-fast floors: {error}");
        std::process::exit(1);
    });
    let gateway = Target::Gateway {
        binary: options.gateway.clone(),
    };
    let reference = Target::Reference {
        node: options.node.clone(),
        script: options.reference.clone(),
    };
    if options.fail_fast_only {
        let runs = if options.quick { 20 } else { 100 };
        let f = FailFastFigures::of(&startup::fail_fast(&gateway, &floor, runs));
        println!(
            "fail-fast {:.3} ms (first line {:.3} ms), bind floor {:.3} ms ({:.2}x), bind+probe floor {:.3} ms ({:.2}x), {runs} runs",
            f.fail_fast_ms,
            f.first_line_ms,
            f.floor_ms,
            f.fail_fast_ms / f.floor_ms,
            f.probe_floor_ms,
            f.fail_fast_ms / f.probe_floor_ms,
        );
        return;
    }
    if options.sessions_only {
        let ours = sessions(&gateway, options.quick).await;
        let theirs = sessions(&reference, options.quick).await;
        let svg = options.out.with_file_name("sessions-under-restart.svg");
        print!(
            "{}",
            report::sessions_section(&ours, &theirs, "sessions-under-restart.svg")
        );
        eprintln!(
            "gateway: {:#?}\nreference: {:#?}",
            ours.restarts, theirs.restarts
        );
        if let Err(error) = std::fs::write(&svg, report::sessions_svg(&ours, &theirs)) {
            eprintln!("gateway-bench: cannot write the chart: {error}");
            std::process::exit(1);
        }
        eprintln!("wrote {}", svg.display());
        return;
    }
    let ours = figures(&gateway, &floor, &options).await;
    if options.gateway_only {
        let paced = report::RestartLoadSummary::of(&ours.restart_paced);
        let flat_out = report::RestartLoadSummary::of(&ours.restart_flat_out);
        println!(
            "fail-fast {:.2} ms (first line {:.2} ms), bind floor {:.2} ms ({:.2}x), bind+probe floor {:.2} ms ({:.2}x), ready {:.2} ms\ngaps (clients, ms, clean share): {:?}\nrestarts under paced load: {paced:?}\nrestarts under flat-out load: {flat_out:?}\nSIGHUP -> serving with no load: {:.2} ms\nthroughput (conns, rps, p50 ms, p99 ms): {:?}\nidle RSS {:.2} MiB, per connection {:.2} KiB",
            ours.fail_fast.fail_fast_ms,
            ours.fail_fast.first_line_ms,
            ours.fail_fast.floor_ms,
            ours.fail_fast.fail_fast_ms / ours.fail_fast.floor_ms,
            ours.fail_fast.probe_floor_ms,
            ours.fail_fast.fail_fast_ms / ours.fail_fast.probe_floor_ms,
            ours.ready_ms,
            ours.gaps,
            ours.idle_serving_ms,
            ours.throughput,
            ours.idle_rss_mib,
            ours.per_connection_kib
        );
        return;
    }
    let theirs = figures(&reference, &floor, &options).await;
    let tls = tls_run(&options).await;

    let gap_svg = options.out.with_file_name("restart-gap.svg");
    let load_svg = options.out.with_file_name("restart-under-load.svg");
    let sessions_svg = options.out.with_file_name("sessions-under-restart.svg");
    let name = |path: &std::path::Path| {
        path.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    };
    let command = if options.quick {
        "bash bench/run --quick"
    } else {
        "bash bench/run"
    };
    let markdown = report::markdown(
        &ours,
        &theirs,
        &Machine::read(),
        command,
        &name(&gap_svg),
        &name(&load_svg),
        &name(&sessions_svg),
    );
    let markdown = report::splice_tls_section(
        &markdown,
        &report::tls_section(
            &tls,
            "From the run above (the gateway only: the reference speaks no TLS).",
        ),
    );
    print!("{markdown}");
    // Sections this run does not write (`--fail-fast-only`'s, `--sessions-only`'s, ones
    // written by hand) stay, after the ones it does.
    let existing = std::fs::read_to_string(&options.out).unwrap_or_default();
    let markdown = report::keeping_other_sections(&markdown, &existing);
    if let Err(error) = std::fs::write(&options.out, &markdown)
        .and_then(|()| std::fs::write(&gap_svg, report::restart_gap_svg(&ours, &theirs)))
        .and_then(|()| std::fs::write(&load_svg, report::restart_load_svg(&ours, &theirs)))
        .and_then(|()| {
            std::fs::write(
                &sessions_svg,
                report::sessions_svg(&ours.sessions, &theirs.sessions),
            )
        })
    {
        eprintln!("gateway-bench: cannot write the report: {error}");
        std::process::exit(1);
    }
    eprintln!(
        "wrote {}, {}, {} and {}",
        options.out.display(),
        gap_svg.display(),
        load_svg.display(),
        sessions_svg.display()
    );
}
