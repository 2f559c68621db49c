//! How long a gateway has been up, said for people: in a refused start's hint and in
//! `gateway status`'s summary.

/// `3h 2m 5s`-style uptime for people.
pub fn human_uptime(uptime_ms: u64) -> String {
    let secs = uptime_ms / 1000;
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s}s"),
        _ => format!("{h}h {m}m {s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_only_the_units_that_matter() {
        assert_eq!(human_uptime(999), "0s");
        assert_eq!(human_uptime(59_999), "59s");
        assert_eq!(human_uptime(61_000), "1m 1s");
        assert_eq!(human_uptime(3_723_000), "1h 2m 3s");
        assert_eq!(human_uptime(90_000_000), "25h 0m 0s");
    }
}
