//! Fail-fast (exec to exit of a refused start) and ready (exec to first /healthz 200).

use std::time::{Duration, Instant};

use crate::target::{Target, free_port, healthz_ok};

pub fn fail_fast(target: &Target, runs: usize) -> Vec<Duration> {
    let port = free_port();
    let _holder = target.start(port);
    (0..runs)
        .map(|_| {
            let started = Instant::now();
            let status = target.spawn(port).wait().expect("wait");
            let elapsed = started.elapsed();
            assert_eq!(
                status.code(),
                Some(78),
                "{}: a refused start exits 78",
                target.name()
            );
            elapsed
        })
        .collect()
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
