//! TLS beside plaintext (issue 20), in the same run, on the same binary: a gateway
//! with `--tls-cert`/`--tls-key` and one without, measured turn about.
//!
//! - *New connections*: each one TCP connect, the TLS handshake (a full one, and one
//!   resuming an earlier session), the upgrade, `connect`, one `health`, and the close
//!   handshake; per second, by 1 and by 16 clients in a loop.
//! - *Established sessions*: `health` request/response over 1 and 64 sessions
//!   ([`throughput::load_over`]): `wss://` should keep at least 0.8× of `ws://`.
//! - *Memory*: RSS per idle session past `connect`, [`SESSIONS`] of them, on a fresh
//!   gateway of each kind.
//!
//! The certificates are made here: a private CA (rcgen, ECDSA P-256) and a leaf for
//! `localhost`, which the clients verify.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use tokio_rustls::rustls::client::Resumption;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, Transport};
use crate::memory;
use crate::stats::{median, ms, percentile};
use crate::target::{Running, Target, cpu_between, free_port};
use crate::throughput::{self, Throughput};

/// Idle sessions held open for the memory figure.
pub const SESSIONS: usize = 1000;
/// Clients in a loop of new connections.
pub const CYCLE_CLIENTS: [usize; 2] = [1, 16];
/// Established sessions for request/response.
pub const SESSION_CLIENTS: [usize; 2] = [1, 64];
/// What `wss://` request/response should keep of `ws://`'s.
pub const THROUGHPUT_GOAL: f64 = 0.8;

/// A private CA, the gateway's certificate chain and key files, and the clients'
/// configurations trusting that CA.
pub struct Pki {
    dir: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    /// Full handshakes only: no session is resumed.
    full: Arc<ClientConfig>,
    /// The rustls default: sessions resumed from tickets of earlier connections.
    resuming: Arc<ClientConfig>,
}

impl Pki {
    pub fn new() -> Self {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = params.self_signed(&ca_key).expect("CA certificate");
        let leaf_key = KeyPair::generate().expect("leaf key");
        let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("leaf params")
            .signed_by(&leaf_key, &ca, &ca_key)
            .expect("leaf certificate");
        let dir = std::env::temp_dir().join(format!("gateway-bench-pki-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("PKI directory");
        let (cert, key) = (dir.join("gateway.crt"), dir.join("gateway.key"));
        std::fs::write(&cert, format!("{}{}", leaf.pem(), ca.pem())).expect("write certificate");
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&key)
            .and_then(|mut file| file.write_all(leaf_key.serialize_pem().as_bytes()))
            .expect("write key (mode 0600)");
        let mut roots = RootCertStore::empty();
        roots.add(ca.der().clone()).expect("CA as a root");
        let client = |resumption: Resumption| {
            let mut config = ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .expect("TLS 1.2 and 1.3")
                .with_root_certificates(roots.clone())
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            config.resumption = resumption;
            Arc::new(config)
        };
        Self {
            full: client(Resumption::disabled()),
            resuming: client(Resumption::default()),
            dir,
            cert,
            key,
        }
    }

    /// The `wss://` clients' transport: full handshakes, or resumed ones.
    pub fn transport(&self, resume: bool) -> Transport {
        Transport::Tls(Arc::clone(if resume { &self.resuming } else { &self.full }))
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The gateway's own provider, `ring`, offering X25519 first as browsers, curl and
/// Node do. (rustls 0.23.48's `ring` default puts P-384 first; a server takes the
/// client's order, and P-384 is `ring`'s slowest group.)
#[allow(deprecated)]
fn provider() -> Arc<tokio_rustls::rustls::crypto::CryptoProvider> {
    use tokio_rustls::rustls::crypto::ring::{default_provider, kx_group};
    let mut provider = default_provider();
    provider.kx_groups = vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1];
    Arc::new(provider)
}

/// New connections per second, and the time each took.
#[derive(Debug, Clone, Copy)]
pub struct Cycles {
    pub per_sec: f64,
    pub p50: Duration,
    pub p99: Duration,
    /// The server's CPU time (user + system) per new connection.
    pub server_cpu: Duration,
}

/// One way of reaching the gateway through a run: its samples per round.
#[derive(Default)]
pub struct Side {
    /// Per entry of [`CYCLE_CLIENTS`]: one sample per round.
    pub cycles: Vec<Vec<Cycles>>,
    /// Per entry of [`SESSION_CLIENTS`]: one sample per round.
    pub sessions: Vec<Vec<Throughput>>,
    pub idle_rss_mib: f64,
    pub per_session_kib: f64,
}

/// The whole comparison.
pub struct TlsRun {
    pub rounds: usize,
    pub window: Duration,
    pub plain: Side,
    pub tls: Side,
    /// New connections over TLS resuming a session (its `sessions` and memory unused).
    pub resumed: Side,
    /// Version, cipher suite and key exchange of a full handshake.
    pub negotiated: String,
}

/// Starts the gateway `binary` on a free port, over TLS with `pki`'s files if given,
/// and waits until a client over `transport` gets past `connect`.
async fn start(
    binary: &std::path::Path,
    pki: Option<&Pki>,
    transport: &Transport,
) -> (Running, u16) {
    let port = free_port();
    let mut command = Target::Gateway {
        binary: binary.to_owned(),
    }
    .command(port);
    if let Some(pki) = pki {
        command
            .arg("--tls-cert")
            .arg(&pki.cert)
            .arg("--tls-key")
            .arg(&pki.key);
    }
    let running = Running {
        child: command.spawn().expect("spawn the gateway"),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while client::try_connected_over(port, transport).await.is_err() {
        assert!(Instant::now() < deadline, "the gateway never served");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (running, port)
}

/// `clients` loops of new connections for `window` (after a fifth of it as warm-up)
/// to the gateway `server` (pid) on `port`.
pub async fn cycles(
    (port, server): (u16, u32),
    transport: &Transport,
    clients: usize,
    window: Duration,
) -> Cycles {
    let warmup_end = Instant::now() + window / 5;
    let end = warmup_end + window;
    let cpu = cpu_between(server, warmup_end, end);
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let transport = transport.clone();
            tokio::spawn(async move {
                let mut times = Vec::new();
                loop {
                    let started = Instant::now();
                    if started >= end {
                        break;
                    }
                    one_cycle(port, &transport).await;
                    if started >= warmup_end {
                        times.push(started.elapsed());
                    }
                }
                times
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("client task"));
    }
    Cycles {
        server_cpu: cpu.await.expect("CPU sampler") / all.len().max(1) as u32,
        per_sec: all.len() as f64 / window.as_secs_f64(),
        p50: percentile(&all, 0.5),
        p99: percentile(&all, 0.99),
    }
}

/// Connect (handshake, upgrade, `connect`), one `health`, then the close handshake to
/// the end of the stream.
async fn one_cycle(port: u16, transport: &Transport) {
    let mut session = client::connected_over(port, transport).await;
    let health = r#"{"type":"req","id":"h","method":"health","params":{}}"#;
    session
        .send(Message::text(health))
        .await
        .expect("send health");
    loop {
        match session.next().await {
            Some(Ok(Message::Text(_))) => break,
            Some(Ok(_)) => continue,
            other => panic!("connection lost: {other:?}"),
        }
    }
    let _ = session.close(None).await;
    while let Some(Ok(_)) = session.next().await {}
}

/// Plaintext and TLS beside each other: `rounds` rounds, the order of the two turned
/// each round, every window `window` long.
pub async fn measure(binary: &std::path::Path, rounds: usize, window: Duration) -> TlsRun {
    let pki = Pki::new();
    let (plain, tls, resumed) = (Transport::Plain, pki.transport(false), pki.transport(true));
    let mut run = TlsRun {
        rounds,
        window,
        plain: Side::default(),
        tls: Side::default(),
        resumed: Side::default(),
        negotiated: String::new(),
    };
    for (side, transport, with_pki) in [
        (&mut run.plain, &plain, None),
        (&mut run.tls, &tls, Some(&pki)),
    ] {
        let (server, port) = start(binary, with_pki, transport).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        eprintln!(
            "[tls] memory with {SESSIONS} idle sessions, {}",
            scheme(transport)
        );
        let memory = memory::of_sessions(server.pid(), port, transport, SESSIONS).await;
        side.idle_rss_mib = memory.idle_rss as f64 / (1024.0 * 1024.0);
        side.per_session_kib = memory.per_connection / 1024.0;
    }
    let (plain_server, plain_port) = start(binary, None, &plain).await;
    let (tls_server, tls_port) = start(binary, Some(&pki), &tls).await;
    run.negotiated = negotiated(tls_port, &tls, &resumed).await;
    let (plain_at, tls_at) = (
        (plain_port, plain_server.pid()),
        (tls_port, tls_server.pid()),
    );
    let turns = [(&plain, plain_at), (&tls, tls_at), (&resumed, tls_at)];
    for side in [&mut run.plain, &mut run.tls, &mut run.resumed] {
        side.cycles = vec![Vec::new(); CYCLE_CLIENTS.len()];
        side.sessions = (0..SESSION_CLIENTS.len()).map(|_| Vec::new()).collect();
    }
    for round in 0..rounds {
        eprintln!("[tls] round {} of {rounds}", round + 1);
        for (i, clients) in CYCLE_CLIENTS.iter().enumerate() {
            for turn in 0..turns.len() {
                let which = (turn + round) % turns.len();
                let (transport, at) = turns[which];
                let c = cycles(at, transport, *clients, window).await;
                side_of(&mut run, which).cycles[i].push(c);
            }
        }
        for (i, clients) in SESSION_CLIENTS.iter().enumerate() {
            for turn in 0..2 {
                let which = (turn + round) % 2;
                let (transport, (port, pid)) = turns[which];
                let t = throughput::load_over(port, transport, *clients, window, Some(pid)).await;
                side_of(&mut run, which).sessions[i].push(t);
            }
        }
    }
    run
}

/// What a full handshake with the gateway on `port` settles on, and what the
/// `resumed` transport's second connection does.
async fn negotiated(port: u16, full: &Transport, resumed: &Transport) -> String {
    let session = client::connected_over(port, full).await;
    let client::Stream::Tls(tls) = session.get_ref() else {
        return "plaintext".to_owned();
    };
    let connection = tls.get_ref().1;
    let settled = format!(
        "{}, {}, {}",
        connection.protocol_version().map_or_else(
            || "?".to_owned(),
            |v| format!("{v:?}").replace("TLSv", "TLS ").replace('_', ".")
        ),
        connection
            .negotiated_cipher_suite()
            .map_or_else(|| "?".to_owned(), |s| format!("{:?}", s.suite())),
        connection
            .negotiated_key_exchange_group()
            .map_or_else(|| "?".to_owned(), |g| format!("{:?}", g.name())),
    );
    let _first = client::connected_over(port, resumed).await;
    let second = client::connected_over(port, resumed).await;
    let kind = match second.get_ref() {
        client::Stream::Tls(tls) => tls
            .get_ref()
            .1
            .handshake_kind()
            .map_or_else(|| "?".to_owned(), |kind| format!("{kind:?}")),
        client::Stream::Plain(_) => "plaintext".to_owned(),
    };
    format!("{settled}; a resuming client's second handshake: {kind}")
}

fn side_of(run: &mut TlsRun, which: usize) -> &mut Side {
    match which {
        0 => &mut run.plain,
        1 => &mut run.tls,
        _ => &mut run.resumed,
    }
}

fn scheme(transport: &Transport) -> &'static str {
    match transport {
        Transport::Plain => "ws://",
        Transport::Tls(_) => "wss://",
    }
}

/// One figure's medians over the rounds.
pub struct Medians {
    pub per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// The server's CPU time per new connection or per request, in µs.
    pub server_cpu_us: f64,
}

impl Medians {
    fn of(per_sec: &[f64], p50: &[Duration], p99: &[Duration], cpu: &[Duration]) -> Self {
        let rates: Vec<Duration> = per_sec
            .iter()
            .map(|r| Duration::from_secs_f64(*r))
            .collect();
        Self {
            per_sec: median(&rates).as_secs_f64(),
            p50_ms: ms(median(p50)),
            p99_ms: ms(median(p99)),
            server_cpu_us: median(cpu).as_secs_f64() * 1e6,
        }
    }

    pub fn of_cycles(samples: &[Cycles]) -> Self {
        Self::of(
            &samples.iter().map(|c| c.per_sec).collect::<Vec<_>>(),
            &samples.iter().map(|c| c.p50).collect::<Vec<_>>(),
            &samples.iter().map(|c| c.p99).collect::<Vec<_>>(),
            &samples.iter().map(|c| c.server_cpu).collect::<Vec<_>>(),
        )
    }

    pub fn of_sessions(samples: &[Throughput]) -> Self {
        Self::of(
            &samples
                .iter()
                .map(|t| t.requests_per_sec)
                .collect::<Vec<_>>(),
            &samples.iter().map(|t| t.p50).collect::<Vec<_>>(),
            &samples.iter().map(|t| t.p99).collect::<Vec<_>>(),
            &samples
                .iter()
                .filter_map(|t| t.server_cpu_per_request)
                .collect::<Vec<_>>(),
        )
    }
}
