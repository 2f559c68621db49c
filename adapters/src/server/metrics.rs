//! `GET /metrics`: the gateway's counters in the Prometheus text format (0.0.4), or in
//! OpenMetrics for a scraper that asks for it (`Accept: application/openmetrics-text`).
//!
//! Every label takes its value from a fixed list (no peer, token, client name or path
//! in a label), so the number of series is bounded. The counters of each label value
//! are created up front and kept as handles: counting an event is one atomic add, no
//! lock and no map lookup on the request path.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The two text formats a scrape can get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TextFormat {
    /// The classic Prometheus text format, for `promtool`, `curl` and older scrapers.
    Prometheus,
    /// OpenMetrics 1.0, which Prometheus asks for first.
    OpenMetrics,
}

impl TextFormat {
    /// OpenMetrics when the `Accept` header names it, the Prometheus format otherwise.
    pub fn negotiate(accept: Option<&str>) -> Self {
        if accept.is_some_and(|a| a.contains("application/openmetrics-text")) {
            Self::OpenMetrics
        } else {
            Self::Prometheus
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// One label, both halves from a fixed list.
type Label = [(&'static str, &'static str); 1];

/// How a WebSocket `connect` ended.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Handshake {
    Ok,
    Unauthorized,
    ProtocolMismatch,
    /// Not a valid `connect` (or not text, or too large).
    Invalid,
    Timeout,
}

/// A guard that refused a request or a message.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Guard {
    /// A WebSocket upgrade from a foreign `Origin` (403).
    Origin,
    /// A request whose `Host` is not loopback (403).
    Host,
    /// A connection over `--max-connections` (503).
    Cap,
    /// An HTTP body over 64 KiB (413), or a WebSocket message over its limit (close 1009).
    Size,
}

/// A WebSocket request, by method.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Request {
    Health,
    Status,
    /// An unknown method or a frame that is not a valid request.
    Other,
}

const HANDSHAKE_OUTCOMES: [&str; 5] = [
    "ok",
    "unauthorized",
    "protocol_mismatch",
    "invalid",
    "timeout",
];
const GUARDS: [&str; 4] = ["origin", "host", "cap", "size"];
const REQUEST_METHODS: [&str; 3] = ["health", "status", "other"];
/// Close codes the gateway sends; anything else is counted as `other`.
const CLOSE_CODES: [(u16, &str); 9] = [
    (1000, "1000"),
    (1001, "1001"),
    (1002, "1002"),
    (1003, "1003"),
    (1008, "1008"),
    (1009, "1009"),
    (1011, "1011"),
    (1012, "1012"),
    (1013, "1013"),
];
const CLOSE_CODE_OTHER: usize = CLOSE_CODES.len();
/// The code of a close that refuses a message over the size limit.
const MESSAGE_TOO_BIG: u16 = 1009;

/// The registry and a handle on every series.
pub(crate) struct Metrics {
    /// What `/metrics` encodes.
    registry: Registry,
    /// Open connections by kind; set from the connection counters at each scrape.
    websocket_connections: Gauge,
    http_connections: Gauge,
    /// Indexed like [`HANDSHAKE_OUTCOMES`].
    handshakes: Vec<Counter>,
    /// Indexed like [`GUARDS`].
    guard_refusals: Vec<Counter>,
    /// Indexed like [`REQUEST_METHODS`].
    requests: Vec<Counter>,
    /// Indexed like [`CLOSE_CODES`], then `other`.
    closes: Vec<Counter>,
    /// Bytes read from and written to accepted connections (HTTP and WebSocket).
    received_bytes: Counter,
    sent_bytes: Counter,
    /// Restarts by outcome: `handed_over` counts the handoffs of this gateway's
    /// lineage (carried from process to process), `failed` the attempts this process
    /// survived.
    restarts: Vec<Counter>,
    /// With `--cluster-etcd`: 1 while active, else 0; and the fencing token (0 when
    /// not active). Set from the cluster gate at each scrape.
    cluster: Option<(Gauge, Gauge)>,
}

/// Outcomes of a restart, in the order of [`Metrics::restarts`].
const RESTART_OUTCOMES: [&str; 2] = ["handed_over", "failed"];

/// What a process knows of the restarts before it: how many handoffs led to it, and
/// how long its own takeover took (from its start to serving).
#[derive(Debug, Clone, Copy, Default)]
pub struct RestartHistory {
    pub handed_over: u64,
    pub takeover: Option<std::time::Duration>,
}

impl Metrics {
    pub fn new(version: &str, history: RestartHistory, clustered: bool) -> Self {
        let mut registry = Registry::with_prefix("gateway");
        register_build_info(&mut registry, version);
        let connections = Family::<Label, Gauge>::default();
        let websocket_connections = connections.get_or_create_owned(&[("kind", "websocket")]);
        let http_connections = connections.get_or_create_owned(&[("kind", "http")]);
        registry.register(
            "open_connections",
            "Open connections: websocket (clients past connect) and http (every other, \
             upgrades still in their handshake included)",
            connections,
        );
        let (handshakes, guard_refusals, requests, closes) = register_protocol(&mut registry);
        let (received_bytes, sent_bytes) = register_traffic(&mut registry);
        let restarts = register_restarts(&mut registry, history);
        let cluster = clustered.then(|| register_cluster(&mut registry));
        Self {
            restarts,
            cluster,
            registry,
            websocket_connections,
            http_connections,
            handshakes,
            guard_refusals,
            requests,
            closes,
            received_bytes,
            sent_bytes,
        }
    }

    /// A handoff failed and this process serves on.
    pub fn restart_failed(&self) {
        self.restarts[1].inc();
    }

    pub fn handshake(&self, outcome: Handshake) {
        self.handshakes[outcome as usize].inc();
    }

    pub fn guard_refused(&self, guard: Guard) {
        self.guard_refusals[guard as usize].inc();
    }

    pub fn request(&self, method: Request) {
        self.requests[method as usize].inc();
    }

    /// A close frame sent with `code`. A close for an oversized message is also a
    /// refusal by the size guard.
    pub fn close_sent(&self, code: u16) {
        let index = CLOSE_CODES
            .iter()
            .position(|(known, _)| *known == code)
            .unwrap_or(CLOSE_CODE_OTHER);
        self.closes[index].inc();
        if code == MESSAGE_TOO_BIG {
            self.guard_refused(Guard::Size);
        }
    }

    /// The byte counters, for [`super::counted_stream::CountedStream`].
    pub fn byte_counters(&self) -> (Counter, Counter) {
        (self.received_bytes.clone(), self.sent_bytes.clone())
    }

    /// The text of one scrape, with the connection gauges as of now.
    pub fn render(
        &self,
        format: TextFormat,
        open_connections: usize,
        websocket_clients: usize,
        fencing_token: Option<u64>,
    ) -> String {
        if let Some((active, token)) = &self.cluster {
            active.set(i64::from(fencing_token.is_some()));
            token.set(fencing_token.map_or(0, |t| i64::try_from(t).unwrap_or(i64::MAX)));
        }
        let websocket = i64::try_from(websocket_clients).unwrap_or(i64::MAX);
        let all = i64::try_from(open_connections).unwrap_or(i64::MAX);
        self.websocket_connections.set(websocket);
        self.http_connections
            .set(all.saturating_sub(websocket).max(0));
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        match format {
            TextFormat::OpenMetrics => text,
            TextFormat::Prometheus => to_prometheus_format(&text),
        }
    }
}

/// Rewrites the encoder's OpenMetrics text in the Prometheus text format. For the
/// counters and gauges registered here the two differ in two ways only: a counter's
/// `HELP`/`TYPE` lines name it with its `_total` suffix, and there is no `# EOF`.
fn to_prometheus_format(open_metrics: &str) -> String {
    let counters: Vec<&str> = open_metrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut text = String::with_capacity(open_metrics.len() + 16 * counters.len());
    for line in open_metrics.lines() {
        if line == "# EOF" {
            continue;
        }
        let descriptor = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|prefix| Some((prefix, line.strip_prefix(prefix)?)));
        match descriptor {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let suffix = if counters.contains(&name) {
                    "_total"
                } else {
                    ""
                };
                text.push_str(&format!("{prefix}{name}{suffix} {tail}"));
            }
            None => text.push_str(line),
        }
        text.push('\n');
    }
    text
}

/// A counter family with one label whose values are `values`, registered under
/// `name`; returns the counters in the order of `values`.
fn counters(
    registry: &mut Registry,
    name: &str,
    help: &str,
    label: &'static str,
    values: &[&'static str],
) -> Vec<Counter> {
    let family = Family::<Label, Counter>::default();
    let handles = values
        .iter()
        .map(|value| family.get_or_create_owned(&[(label, *value)]))
        .collect();
    registry.register(name, help, family);
    handles
}

/// `gateway_build_info{version}`: always 1.
fn register_build_info(registry: &mut Registry, version: &str) {
    let build_info = Family::<[(&'static str, String); 1], Gauge>::default();
    build_info
        .get_or_create(&[("version", version.to_owned())])
        .set(1);
    registry.register(
        "build_info",
        "The running gateway's version (always 1)",
        build_info,
    );
}

/// The WebSocket protocol's counters: handshakes, guard refusals, requests, closes.
type ProtocolCounters = (Vec<Counter>, Vec<Counter>, Vec<Counter>, Vec<Counter>);

fn register_protocol(registry: &mut Registry) -> ProtocolCounters {
    let handshakes = counters(
        registry,
        "handshakes",
        "WebSocket connect handshakes by outcome",
        "outcome",
        &HANDSHAKE_OUTCOMES,
    );
    let guard_refusals = counters(
        registry,
        "guard_refusals",
        "Requests, connections and messages refused by a guard",
        "guard",
        &GUARDS,
    );
    let requests = counters(
        registry,
        "requests",
        "WebSocket requests by method (other: unknown methods and invalid requests)",
        "method",
        &REQUEST_METHODS,
    );
    let close_labels: Vec<&'static str> = CLOSE_CODES
        .iter()
        .map(|(_, label)| *label)
        .chain(["other"])
        .collect();
    let closes = counters(
        registry,
        "websocket_closes_sent",
        "WebSocket close frames sent by the gateway, by close code",
        "code",
        &close_labels,
    );
    (handshakes, guard_refusals, requests, closes)
}

/// Bytes read and written on accepted connections.
fn register_traffic(registry: &mut Registry) -> (Counter, Counter) {
    let received_bytes = Counter::default();
    registry.register(
        "received_bytes",
        "Bytes read from accepted connections (HTTP and WebSocket, headers and frames included)",
        received_bytes.clone(),
    );
    let sent_bytes = Counter::default();
    registry.register(
        "sent_bytes",
        "Bytes written to accepted connections (HTTP and WebSocket, headers and frames included)",
        sent_bytes.clone(),
    );
    (received_bytes, sent_bytes)
}

/// Restarts by outcome (handed_over carried across handoffs) and the takeover's time.
fn register_restarts(registry: &mut Registry, history: RestartHistory) -> Vec<Counter> {
    let restarts = counters(
        registry,
        "restarts",
        "Restarts by handoff: handed_over counts the handoffs that led to this process \
         (carried across them), failed the attempts this process survived",
        "outcome",
        &RESTART_OUTCOMES,
    );
    restarts[0].inc_by(history.handed_over);
    let takeover = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
    takeover.set(history.takeover.map_or(0.0, |d| d.as_secs_f64()));
    registry.register(
        "takeover_seconds",
        "How long this process took, from its start to serving, to take over from its \
         predecessor (0 when it did not take over)",
        takeover,
    );
    restarts
}

/// The cluster role and fencing token, for a clustered gateway.
fn register_cluster(registry: &mut Registry) -> (Gauge, Gauge) {
    let active = Gauge::default();
    registry.register(
        "cluster_active",
        "1 while this gateway is the active holder of its cluster key, else 0 (standby)",
        active.clone(),
    );
    let token = Gauge::default();
    registry.register(
        "cluster_fencing_token",
        "The fencing token of the active term (the key's etcd create revision); 0 when \
         not active",
        token.clone(),
    );
    (active, token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn every_series_exists_from_the_start_at_zero() {
        let text = Metrics::new("1.2.3", RestartHistory::default(), false).render(
            TextFormat::Prometheus,
            0,
            0,
            None,
        );
        for series in [
            r#"gateway_handshakes_total{outcome="timeout"}"#,
            r#"gateway_guard_refusals_total{guard="cap"}"#,
            r#"gateway_requests_total{method="status"}"#,
            r#"gateway_websocket_closes_sent_total{code="other"}"#,
            r#"gateway_open_connections{kind="http"}"#,
            "gateway_received_bytes_total",
        ] {
            assert_eq!(sample(&text, series), Some(0.0), "{series} in\n{text}");
        }
        assert_eq!(
            sample(&text, r#"gateway_build_info{version="1.2.3"}"#),
            Some(1.0)
        );
    }

    #[test]
    fn events_move_their_own_counter_only() {
        let metrics = Metrics::new("1.2.3", RestartHistory::default(), false);
        metrics.handshake(Handshake::ProtocolMismatch);
        metrics.request(Request::Health);
        metrics.request(Request::Health);
        metrics.close_sent(1009);
        metrics.close_sent(4000);
        let text = metrics.render(TextFormat::Prometheus, 5, 2, None);
        let value = |series: &str| sample(&text, series).unwrap();
        assert_eq!(
            value(r#"gateway_handshakes_total{outcome="protocol_mismatch"}"#),
            1.0
        );
        assert_eq!(value(r#"gateway_handshakes_total{outcome="ok"}"#), 0.0);
        assert_eq!(value(r#"gateway_requests_total{method="health"}"#), 2.0);
        assert_eq!(
            value(r#"gateway_websocket_closes_sent_total{code="1009"}"#),
            1.0
        );
        assert_eq!(
            value(r#"gateway_websocket_closes_sent_total{code="other"}"#),
            1.0
        );
        assert_eq!(value(r#"gateway_guard_refusals_total{guard="size"}"#), 1.0);
        assert_eq!(value(r#"gateway_open_connections{kind="websocket"}"#), 2.0);
        assert_eq!(value(r#"gateway_open_connections{kind="http"}"#), 3.0);
    }

    #[test]
    fn counters_are_described_by_their_sample_name_in_the_prometheus_format() {
        let metrics = Metrics::new("1.2.3", RestartHistory::default(), false);
        let prometheus = metrics.render(TextFormat::Prometheus, 0, 0, None);
        assert!(prometheus.contains("# TYPE gateway_requests_total counter\n"));
        assert!(prometheus.contains("# HELP gateway_requests_total WebSocket requests"));
        assert!(prometheus.contains("# TYPE gateway_open_connections gauge\n"));
        assert!(!prometheus.contains("# EOF"));
        let open_metrics = metrics.render(TextFormat::OpenMetrics, 0, 0, None);
        assert!(open_metrics.contains("# TYPE gateway_requests counter\n"));
        assert!(open_metrics.ends_with("# EOF\n"));
    }

    #[test]
    fn openmetrics_only_when_asked_for() {
        assert_eq!(TextFormat::negotiate(None), TextFormat::Prometheus);
        assert_eq!(
            TextFormat::negotiate(Some("text/plain;version=0.0.4")),
            TextFormat::Prometheus
        );
        assert_eq!(
            TextFormat::negotiate(Some(
                "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
            )),
            TextFormat::OpenMetrics
        );
    }

    #[test]
    fn restarts_carry_the_lineage_and_the_cluster_role_is_read_at_each_scrape() {
        let history = RestartHistory {
            handed_over: 3,
            takeover: Some(std::time::Duration::from_millis(4)),
        };
        let metrics = Metrics::new("1.2.3", history, true);
        metrics.restart_failed();
        let text = metrics.render(TextFormat::Prometheus, 0, 0, Some(41));
        assert_eq!(
            sample(&text, r#"gateway_restarts_total{outcome="handed_over"}"#),
            Some(3.0)
        );
        assert_eq!(
            sample(&text, r#"gateway_restarts_total{outcome="failed"}"#),
            Some(1.0)
        );
        assert_eq!(sample(&text, "gateway_takeover_seconds"), Some(0.004));
        assert_eq!(sample(&text, "gateway_cluster_active"), Some(1.0));
        assert_eq!(sample(&text, "gateway_cluster_fencing_token"), Some(41.0));
        let standby = metrics.render(TextFormat::Prometheus, 0, 0, None);
        assert_eq!(sample(&standby, "gateway_cluster_active"), Some(0.0));
        let single = Metrics::new("1.2.3", RestartHistory::default(), false).render(
            TextFormat::Prometheus,
            0,
            0,
            None,
        );
        assert!(!single.contains("gateway_cluster_"), "{single}");
    }
}
