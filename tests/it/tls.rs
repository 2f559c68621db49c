//! Off loopback, safely (docs/reference.md#tls), on the real binary: TLS on the one port
//! with certificates from a private CA made here (rcgen), the command line against a
//! TLS gateway, every refusal, rotation by restart, and the token kept off the
//! command line.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::support::*;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SerialNumber};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use tokio_tungstenite::tungstenite::{self, Message};

/// A private CA and the files of the certificates it issues, in a private directory.
struct Pki {
    dir: TempDir,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
}

/// One issued certificate: its files, and its DER (what a server presents).
struct Issued {
    cert: PathBuf,
    key: PathBuf,
    der: CertificateDer<'static>,
}

impl Pki {
    fn new() -> Self {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = params.self_signed(&ca_key).expect("CA certificate");
        Self {
            dir: TempDir::new("pki"),
            ca,
            ca_key,
        }
    }

    /// Issues a certificate for localhost and 127.0.0.1 with `serial`; writes
    /// `NAME.crt` (leaf, then the CA: a chain) and `NAME.key` (mode 0600).
    fn issue(&self, name: &str, serial: u64) -> Issued {
        let key = KeyPair::generate().expect("leaf key");
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("leaf params");
        params.serial_number = Some(SerialNumber::from(serial));
        let leaf = params
            .signed_by(&key, &self.ca, &self.ca_key)
            .expect("leaf certificate");
        let cert_path = self.dir.path().join(format!("{name}.crt"));
        let key_path = self.dir.path().join(format!("{name}.key"));
        std::fs::write(&cert_path, format!("{}{}", leaf.pem(), self.ca.pem())).unwrap();
        write_private(&key_path, key.serialize_pem().as_bytes());
        Issued {
            cert: cert_path,
            key: key_path,
            der: leaf.der().clone(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A client that trusts this CA only.
    fn client(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.der().clone()).expect("CA as a root");
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

#[allow(deprecated)] // the gateway's provider too: no cmake or nasm to build it
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Writes a file with mode 0600 (a key, a token).
fn write_private(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// A TLS connection to the gateway on `port`, verified against the CA as `localhost`.
fn tls_connect(port: u16, client: &Arc<ClientConfig>) -> std::io::Result<TlsStream> {
    let tcp = TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    let name = ServerName::try_from("localhost").unwrap();
    let connection =
        ClientConnection::new(Arc::clone(client), name).map_err(std::io::Error::other)?;
    let mut stream = StreamOwned::new(connection, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(stream)
}

/// `GET path` over TLS: status, body, and the certificate the server presented.
fn https_get(
    port: u16,
    path: &str,
    client: &Arc<ClientConfig>,
) -> Option<(u16, String, CertificateDer<'static>)> {
    let mut stream = tls_connect(port, client).ok()?;
    let presented = stream
        .conn
        .peer_certificates()?
        .first()?
        .clone()
        .into_owned();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut bytes = Vec::new();
    // A peer closing without close_notify is an error to rustls; the bytes stand.
    let _ = stream.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned(), presented))
}

/// A gateway started in a process group of its own, so that the successors of a
/// restart are killed with it on drop.
struct TlsGateway {
    child: KilledOnDrop,
    port: u16,
    _state: TempDir,
}

impl TlsGateway {
    fn spawn(port: u16, args: &[&str], configure: impl FnOnce(&mut std::process::Command)) -> Self {
        let state = TempDir::new("tls");
        let port_text = port.to_string();
        let mut all = vec!["--port", port_text.as_str()];
        all.extend_from_slice(args);
        let mut command = gateway_command(&all, state.path());
        command.process_group(0);
        configure(&mut command);
        Self {
            child: KilledOnDrop(command.spawn().expect("spawn gateway")),
            port,
            _state: state,
        }
    }

    /// Spawns with `--tls-cert`/`--tls-key` of `issued`; waits until it serves https.
    fn start(port: u16, issued: &Issued, pki: &Pki, args: &[&str]) -> Self {
        let cert = issued.cert.to_str().unwrap();
        let key = issued.key.to_str().unwrap();
        let mut all = vec!["--tls-cert", cert, "--tls-key", key];
        all.extend_from_slice(args);
        let mut gateway = Self::spawn(port, &all, |_| {});
        gateway.wait_serving(pki);
        gateway
    }

    /// Waits until the first process serves `/healthz` over TLS.
    fn wait_serving(&mut self, pki: &Pki) {
        let client = pki.client();
        let port = self.port;
        poll_until("the TLS gateway to serve", DEADLINE, || {
            if let Ok(Some(status)) = self.child.try_wait() {
                let mut stderr = String::new();
                if let Some(mut pipe) = self.child.stderr.take() {
                    let _ = pipe.read_to_string(&mut stderr);
                }
                panic!("gateway exited early with {status}: {stderr}");
            }
            serving_pid(port, &client)
        });
    }

    /// Stops the whole group with SIGTERM and returns what the first process wrote
    /// on stderr.
    fn stop_and_read_stderr(&mut self) -> String {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        poll_until("the gateway to exit", DEADLINE, || {
            self.child.try_wait().expect("try_wait")
        });
        let mut text = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            let _ = stderr.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for TlsGateway {
    fn drop(&mut self) {
        let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
    }
}

/// The pid `/healthz` names over TLS, when it answers 200.
fn serving_pid(port: u16, client: &Arc<ClientConfig>) -> Option<u32> {
    https_get(port, "/healthz", client)
        .filter(|(status, _, _)| *status == 200)
        .and_then(|(_, body, _)| json(&body)["pid"].as_u64())
        .map(|pid| pid as u32)
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Opens the WebSocket over `stream`, sends `connect` (with `token`), returns the
/// answer's payload type and the open socket.
fn ws_connect<S: Read + Write>(
    url: &str,
    stream: S,
    token: Option<&str>,
) -> (serde_json::Value, tungstenite::WebSocket<S>) {
    let (mut socket, _) = tungstenite::client::client(url, stream).expect("websocket upgrade");
    let auth = token.map_or(
        serde_json::Value::Null,
        |t| serde_json::json!({ "token": t }),
    );
    let mut params = serde_json::json!({
        "minProtocol": 1,
        "maxProtocol": 1,
        "client": { "name": "tls-test", "version": "1" },
    });
    if !auth.is_null() {
        params["auth"] = auth;
    }
    let connect = serde_json::json!({"type":"req","id":"c1","method":"connect","params":params});
    socket
        .send(Message::text(connect.to_string()))
        .expect("send connect");
    let answer = read_json(&mut socket);
    (answer, socket)
}

fn read_json<S: Read + Write>(socket: &mut tungstenite::WebSocket<S>) -> serde_json::Value {
    loop {
        match socket.read().expect("read a frame") {
            Message::Text(text) => return json(&text),
            Message::Close(frame) => return serde_json::json!({ "closed": format!("{frame:?}") }),
            _ => {}
        }
    }
}

#[test]
fn https_and_wss_are_served_with_the_ca_and_a_plain_client_is_not() {
    let pki = Pki::new();
    let issued = pki.issue("server", 1);
    let port = free_port();
    let gateway = TlsGateway::start(port, &issued, &pki, &[]);
    let client = pki.client();

    let (status, body, presented) = https_get(port, "/healthz", &client).expect("https answer");
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["pid"], gateway.child.id());
    assert_eq!(presented, issued.der);

    let stream = tls_connect(port, &client).expect("TLS connection");
    assert_eq!(stream.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (hello, mut socket) = ws_connect(&format!("wss://localhost:{port}/"), stream, None);
    assert_eq!(hello["payload"]["type"], "hello-ok", "{hello}");
    socket
        .send(Message::text(
            r#"{"type":"req","id":"h1","method":"health"}"#,
        ))
        .unwrap();
    let health = read_json(&mut socket);
    assert_eq!(health["payload"]["pid"], gateway.child.id(), "{health}");

    // Plain HTTP on the TLS port gets no HTTP answer.
    assert!(http_get(port, "/healthz").is_none());
}

#[test]
fn a_second_tls_gateway_on_the_port_is_refused_with_wss_and_78() {
    let pki = Pki::new();
    let issued = pki.issue("server", 1);
    let port = free_port();
    let first = TlsGateway::start(port, &issued, &pki, &[]);
    let cert = issued.cert.to_str().unwrap();
    let key = issued.key.to_str().unwrap();
    let (code, stderr) = run_to_exit(port, &["--tls-cert", cert, "--tls-key", key]);
    assert_eq!(code, 78, "{stderr}");
    assert_eq!(
        first_line(&stderr),
        format!(
            "GatewayLockError: another gateway instance is already listening on wss://127.0.0.1:{port}"
        )
    );
    // The probe read the holder over TLS, unverified.
    assert!(
        stderr.contains(&format!("pid {}", first.child.id())),
        "{stderr}"
    );
}

#[test]
fn status_restart_and_stop_talk_tls_and_say_wss() {
    let pki = Pki::new();
    let issued = pki.issue("server", 1);
    let port = free_port();
    let p = port.to_string();
    let gateway = TlsGateway::start(port, &issued, &pki, &[]);
    let old = gateway.child.id();
    let client = pki.client();

    let (code, stdout, stderr) = run_cli(&["status", "--port", &p, "--json"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let status = json(&stdout);
    assert_eq!(status["url"], format!("wss://127.0.0.1:{port}"));
    assert_eq!(status["pid"], old);

    let (code, stdout, stderr) = run_cli(&["restart", "--port", &p]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let new = poll_until("the new process to serve", DEADLINE, || {
        serving_pid(port, &client).filter(|pid| *pid != old)
    });
    assert_eq!(
        stdout.trim(),
        format!("restarted gateway on wss://127.0.0.1:{port}: pid {old} -> pid {new}")
    );

    let (code, stdout, stderr) = run_cli(&["stop", "--port", &p]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!(
            "stopped gateway pid {new} on wss://127.0.0.1:{port}"
        )),
        "{stdout}"
    );
    assert!(port_is_free(port));
}

/// Runs a start that must be refused before binding: code 78, its first line, and
/// the port free afterwards.
fn assert_refused(port: u16, args: &[&str], line: &str) {
    let (code, stderr) = run_to_exit(port, args);
    assert_eq!(code, 78, "{args:?}: {stderr}");
    assert_eq!(first_line(&stderr), line, "{args:?}");
    assert!(port_is_free(port), "{args:?}: the port stays free");
}

#[test]
fn each_unusable_tls_file_and_plaintext_off_loopback_is_refused_with_78() {
    let pki = Pki::new();
    let good = pki.issue("good", 1);
    let other = pki.issue("other", 2);
    let port = free_port();
    let cert = good.cert.to_str().unwrap();
    let key = good.key.to_str().unwrap();

    let missing = pki.path("missing.crt");
    let missing = missing.to_str().unwrap();
    assert_refused(
        port,
        &["--tls-cert", missing, "--tls-key", key],
        &format!(
            "GatewayConfigError: cannot read the TLS certificate file {missing}: No such file or directory (os error 2)"
        ),
    );

    let not_pem = pki.path("not-pem.crt");
    std::fs::write(&not_pem, "just some text\n").unwrap();
    let not_pem = not_pem.to_str().unwrap();
    assert_refused(
        port,
        &["--tls-cert", not_pem, "--tls-key", key],
        &format!(
            "GatewayConfigError: the TLS certificate file {not_pem} is not PEM: no CERTIFICATE block"
        ),
    );

    let other_key = other.key.to_str().unwrap();
    assert_refused(
        port,
        &["--tls-cert", cert, "--tls-key", other_key],
        &format!(
            "GatewayConfigError: the TLS key file {other_key} does not match the certificate in {cert}"
        ),
    );

    std::fs::set_permissions(&good.key, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_refused(
        port,
        &["--tls-cert", cert, "--tls-key", key],
        &format!(
            "GatewayConfigError: the TLS key file {key} is readable by group or others (mode 0644); chmod 600 it"
        ),
    );

    assert_refused(
        port,
        &["--bind", "0.0.0.0", "--token", "t0k"],
        &format!(
            "GatewayConfigError: refusing to send tokens in clear text on ws://0.0.0.0:{port} (set --tls-cert and --tls-key, or --allow-plaintext behind a TLS proxy)"
        ),
    );
}

#[test]
fn a_sighup_rotates_the_certificate_and_bad_new_files_fail_the_restart() {
    let pki = Pki::new();
    let first = pki.issue("first", 1001);
    let second = pki.issue("second", 1002);
    let port = free_port();
    let gateway = TlsGateway::start(port, &first, &pki, &[]);
    let old = gateway.child.id();
    let client = pki.client();

    // New files under the same names, then SIGHUP: the new process presents them.
    std::fs::copy(&second.cert, &first.cert).unwrap();
    std::fs::copy(&second.key, &first.key).unwrap();
    kill(Pid::from_raw(old as i32), Signal::SIGHUP).unwrap();
    let new = poll_until("the new certificate to be presented", DEADLINE, || {
        https_get(port, "/healthz", &client)
            .filter(|(_, _, presented)| *presented == second.der)
            .map(|(_, body, _)| json(&body)["pid"].as_u64().unwrap() as u32)
    });
    assert_ne!(new, old);

    // A key that is not PEM: the restart fails, the serving process serves on.
    write_private(&first.key, b"not a key\n");
    let (code, stdout, stderr) = run_cli(&["restart", "--port", &port.to_string()]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stderr.starts_with("restart failed: "), "{stderr}");
    assert!(stderr.contains("is not PEM"), "{stderr}");
    let (status, body, presented) = https_get(port, "/healthz", &client).expect("still serving");
    assert_eq!(
        (status, json(&body)["pid"].as_u64()),
        (200, Some(u64::from(new)))
    );
    assert_eq!(presented, second.der);
}

/// The token's place in the argument list, as any local user sees it.
fn cmdline(pid: u32) -> String {
    String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap()).into_owned()
}

#[test]
fn a_token_file_and_a_credential_give_the_token_and_keep_it_off_the_command_line() {
    let dir = TempDir::new("token");
    let token_file = dir.path().join("gateway.token");
    write_private(&token_file, b"s3cret-from-file\n");
    let port = free_port();
    let mut gateway = Gateway::start(port, &["--token-file", token_file.to_str().unwrap()]);
    assert!(!cmdline(gateway.child.id()).contains("s3cret"));
    let url = format!("ws://127.0.0.1:{port}/");
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (hello, _) = ws_connect(&url, tcp, Some("s3cret-from-file"));
    assert_eq!(hello["payload"]["type"], "hello-ok", "{hello}");
    gateway.signal(Signal::SIGTERM);
    gateway.wait_exit();

    let credentials = TempDir::new("credentials");
    write_private(
        &credentials.path().join("gateway-token"),
        b"s3cret-credential\n",
    );
    let port = free_port();
    let mut gateway = Gateway::spawn_with(port, &[], |command| {
        command.env("CREDENTIALS_DIRECTORY", credentials.path());
    });
    gateway.wait_healthy();
    let url = format!("ws://127.0.0.1:{port}/");
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (hello, _) = ws_connect(&url, tcp, Some("s3cret-credential"));
    assert_eq!(hello["payload"]["type"], "hello-ok", "{hello}");
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (refused, _) = ws_connect(&url, tcp, Some("wrong"));
    assert_eq!(refused["error"]["code"], "unauthorized", "{refused}");
}

/// The shipped unit's `SetCredential=gateway-token:\n` default (systemd writes it when
/// `/etc/gateway/PROFILE.token` does not exist): a credential of nothing but a newline
/// is no token, and the next source, `GATEWAY_TOKEN`, applies.
#[test]
fn an_empty_credential_is_no_credential_and_the_variable_gives_the_token() {
    let credentials = TempDir::new("credentials");
    write_private(&credentials.path().join("gateway-token"), b"\n");
    let port = free_port();
    let mut gateway = Gateway::spawn_with(port, &[], |command| {
        command
            .env("CREDENTIALS_DIRECTORY", credentials.path())
            .env("GATEWAY_TOKEN", "s3cret-variable");
    });
    gateway.wait_healthy();
    let url = format!("ws://127.0.0.1:{port}/");
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (hello, _) = ws_connect(&url, tcp, Some("s3cret-variable"));
    assert_eq!(hello["payload"]["type"], "hello-ok", "{hello}");
}

#[test]
fn an_empty_token_file_is_refused_with_78() {
    let dir = TempDir::new("token");
    let token_file = dir.path().join("empty.token");
    write_private(&token_file, b"\n");
    let path = token_file.to_str().unwrap();
    assert_refused(
        free_port(),
        &["--token-file", path],
        &format!("GatewayConfigError: the token file {path} (--token-file) is empty"),
    );
}

#[test]
fn a_token_on_the_command_line_and_plaintext_off_loopback_are_each_warned_about_once() {
    let port = free_port();
    let mut gateway = TlsGateway::spawn(
        port,
        &[
            "--token",
            "visible",
            "--bind",
            "0.0.0.0",
            "--allow-plaintext",
        ],
        |_| {},
    );
    wait_until("the gateway to serve", || {
        http_get(port, "/healthz").is_some_and(|r| r.status == 200)
    });
    let stderr = gateway.stop_and_read_stderr();
    assert_eq!(
        stderr
            .matches("any local user can read it from the process list")
            .count(),
        1,
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("--allow-plaintext: serving").count(),
        1,
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "gateway listening on ws://0.0.0.0:{port} (pid {})",
            gateway.child.id()
        )),
        "{stderr}"
    );
}

#[test]
fn the_status_page_allows_its_own_wss_origin() {
    let pki = Pki::new();
    let issued = pki.issue("server", 1);
    let port = free_port();
    let _gateway = TlsGateway::start(port, &issued, &pki, &[]);
    let mut stream = tls_connect(port, &pki.client()).unwrap();
    let request = format!(
        "GET / HTTP/1.1\r\nHost: localhost:{port}\r\nAccept: text/html\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let policy = text
        .lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with("content-security-policy:")
        })
        .unwrap_or_else(|| panic!("no CSP: {text}"));
    assert!(
        policy.contains(&format!("connect-src 'self' wss://localhost:{port};")),
        "{policy}"
    );
}

/// A TLS session cannot move with a restart (its keys live in the process): it hears
/// the `gateway restarting` shutdown event and a 1012 close from the old process, and a
/// new connection is served by the new one.
#[test]
fn a_tls_session_does_not_move_it_hears_gateway_restarting_and_1012() {
    let pki = Pki::new();
    let issued = pki.issue("server", 7);
    let port = free_port();
    let gateway = TlsGateway::start(port, &issued, &pki, &[]);
    let old = gateway.child.id();
    let client = pki.client();
    let stream = tls_connect(port, &client).expect("TLS connection");
    let (hello, mut socket) = ws_connect(&format!("wss://localhost:{port}/"), stream, None);
    assert_eq!(hello["payload"]["type"], "hello-ok", "{hello}");

    kill(Pid::from_raw(old as i32), Signal::SIGHUP).unwrap();
    let goodbye = loop {
        let frame = read_json(&mut socket);
        if frame["event"] != "tick" {
            break frame;
        }
    };
    assert_eq!(goodbye["event"], "shutdown", "{goodbye}");
    assert_eq!(goodbye["payload"]["reason"], "gateway restarting");
    let close = read_json(&mut socket);
    assert!(
        close["closed"]
            .as_str()
            .is_some_and(|c| c.contains("1012") || c.contains("Restart")),
        "{close}"
    );
    let new = poll_until("the new process to serve", DEADLINE, || {
        serving_pid(port, &client).filter(|pid| *pid != old)
    });
    assert_ne!(new, old);
}
