//! Fail-fast (exec to exit of a refused start, beside its two floors: bind and exit,
//! and bind + `/healthz` probe + exit) and ready (exec to first /healthz 200).

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::floor::{Floor, Mode};
use crate::target::{Target, free_port, healthz_ok};

/// Refused starts of `target` and of both floors, interleaved against the same holder
/// so that all three see the same machine at the same moments.
pub struct FailFast {
    pub target: Vec<Duration>,
    /// Exec to the first line on the target's stderr (the refusal's first line).
    pub first_line: Vec<Duration>,
    /// The floor that only binds and exits.
    pub floor: Vec<Duration>,
    /// The floor that binds, probes the holder's `/healthz` and exits: the same work
    /// as the gateway's refused start.
    pub probe_floor: Vec<Duration>,
}

pub fn fail_fast(target: &Target, floor: &Floor, runs: usize) -> FailFast {
    let port = free_port();
    let _holder = target.start(port);
    let refused_start = |samples: &mut FailFast| {
        let started = Instant::now();
        let mut child = target
            .command(port)
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn server under test");
        let mut stderr = BufReader::new(child.stderr.take().expect("piped stderr"));
        let mut line = String::new();
        let _ = stderr.read_line(&mut line);
        let first_line = started.elapsed();
        let status = child.wait().expect("wait");
        let elapsed = started.elapsed();
        assert_eq!(
            status.code(),
            Some(78),
            "{}: a refused start exits 78 (first line: {line:?})",
            target.name()
        );
        samples.target.push(elapsed);
        samples.first_line.push(first_line);
    };
    let mut samples = FailFast {
        target: Vec::with_capacity(runs),
        first_line: Vec::with_capacity(runs),
        floor: Vec::with_capacity(runs),
        probe_floor: Vec::with_capacity(runs),
    };
    for run in 0..runs {
        // Rotate which goes first, so none always runs on a warmer cache.
        for turn in 0..3 {
            match (run + turn) % 3 {
                0 => refused_start(&mut samples),
                1 => samples.floor.push(floor.refused_start(Mode::Bind, port)),
                _ => samples
                    .probe_floor
                    .push(floor.refused_start(Mode::BindProbe, port)),
            }
        }
    }
    samples
}

pub fn ready(target: &Target, runs: usize) -> Vec<Duration> {
    (0..runs)
        .map(|_| {
            let port = free_port();
            let started = Instant::now();
            let child = target.spawn(port);
            let running = crate::target::Running { child };
            while !healthz_ok(port) {
                std::thread::yield_now();
            }
            let elapsed = started.elapsed();
            drop(running);
            elapsed
        })
        .collect()
}
