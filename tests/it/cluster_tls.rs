//! The cluster lock on a locked-down etcd (docs/reference.md#cluster and #tls, on the real
//! binary): TLS on etcd's client URL with certificates from a private CA made here,
//! authentication on with a user `gw` whose role reaches `/gateway/` only, and client
//! certificates required. A refusal (credentials, permissions, certificates) exits 78
//! naming the endpoint; an unreachable etcd stays 75.

use std::path::PathBuf;

use crate::support::etcd::{Etcd, EtcdTlsFiles};
use crate::support::*;
use nix::sys::signal::Signal;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use serde_json::Value;

/// `gw`'s password (etcd's users get theirs from `Etcd::enable_auth`).
const GW_PASSWORD: &str = "gw-Pass-7f3k9q";

/// A private CA and the files of what it issues, in a private directory.
struct Pki {
    dir: TempDir,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
}

impl Pki {
    fn new() -> Self {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "test CA");
        let ca = params.self_signed(&ca_key).expect("CA certificate");
        let pki = Self {
            dir: TempDir::new("etcd-pki"),
            ca,
            ca_key,
        };
        std::fs::write(pki.ca_file(), pki.ca.pem()).unwrap();
        pki
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A certificate for 127.0.0.1 and localhost with the common name `name`:
    /// `NAME.crt`, `NAME.key` (mode 0600).
    fn issue(&self, name: &str) -> (PathBuf, PathBuf) {
        self.issue_as(name, Some(name))
    }

    /// The same, with `common_name` as the subject's CN, or no subject at all.
    fn issue_as(&self, name: &str, common_name: Option<&str>) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().expect("leaf key");
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .expect("leaf params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(common_name) = common_name {
            params
                .distinguished_name
                .push(DnType::CommonName, common_name);
        }
        let leaf = params
            .signed_by(&key, &self.ca, &self.ca_key)
            .expect("leaf certificate");
        let cert = self.dir.path().join(format!("{name}.crt"));
        let key_path = self.dir.path().join(format!("{name}.key"));
        std::fs::write(&cert, leaf.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        (cert, key_path)
    }
}

/// etcd on TLS signed by `pki` (requiring client certificates when asked), with
/// authentication on and the user `gw` in the role `gateway` (readwrite on
/// `/gateway/` only).
fn secured_etcd(pki: &Pki, client_certificates: bool, auth: bool) -> Option<Etcd> {
    let (cert, key) = pki.issue("etcd");
    let client = client_certificates.then(|| pki.issue("etcdctl"));
    let mut etcd = Etcd::start_secured(EtcdTlsFiles {
        ca: pki.ca_file(),
        cert,
        key,
        client,
    })?;
    if auth {
        etcd.enable_auth(&[("gw", GW_PASSWORD)]);
    }
    Some(etcd)
}

/// Spawns a gateway on `url` for `key`, with `args` and the password (if any) in
/// `GATEWAY_CLUSTER_PASSWORD`, as a service manager would pass it.
fn spawn(url: &str, key: &str, args: &[&str], password: Option<&str>) -> Gateway {
    let mut all = vec![
        "--cluster-etcd",
        url,
        "--cluster-key",
        key,
        "--cluster-ttl",
        "4",
    ];
    all.extend_from_slice(args);
    Gateway::spawn_with(free_port(), &all, |command| {
        if let Some(password) = password {
            command.env("GATEWAY_CLUSTER_PASSWORD", password);
        }
    })
}

/// Runs a gateway that must be refused: its exit code and stderr, once the port it
/// bound is free again.
fn refused(gateway: &mut Gateway) -> (Option<i32>, String) {
    let status = gateway.wait_exit();
    let stderr = gateway.stderr_now();
    assert!(port_is_free(gateway.port), "the port is released: {stderr}");
    (status.code(), stderr)
}

#[test]
fn a_gateway_over_https_as_an_etcd_user_is_active_and_its_password_stays_off_the_process_list() {
    let pki = Pki::new();
    let Some(etcd) = secured_etcd(&pki, false, true) else {
        return;
    };
    let ca = pki.ca_file();
    let args = ["--cluster-ca", ca.to_str().unwrap(), "--cluster-user", "gw"];
    let mut gateway = spawn(&etcd.url(), "secured", &args, Some(GW_PASSWORD));
    gateway.wait_healthy();

    let health = http_get(gateway.port, "/healthz").unwrap().json();
    assert_eq!(health["cluster"]["role"], "active", "{health}");
    let port = gateway.port.to_string();
    let (code, stdout, stderr) = run_cli(&["status", "--port", &port, "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let status: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(status["role"], "active", "{stdout}");
    let holder = etcd
        .get("/gateway/lock/secured")
        .expect("the key, read as root");
    assert!(
        holder.contains(&format!("\"pid\":{}", gateway.pid())),
        "{holder}"
    );

    let cmdline = std::fs::read(format!("/proc/{}/cmdline", gateway.pid())).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(cmdline.contains("--cluster-user gw"), "{cmdline}");
    assert!(!cmdline.contains(GW_PASSWORD), "{cmdline}");

    gateway.signal(Signal::SIGTERM);
    let exit = gateway.wait_exit();
    let stderr = gateway.stderr_now();
    assert_eq!(exit.code(), Some(0), "{stderr}");
    assert!(!stderr.contains(GW_PASSWORD), "{stderr}");
    assert_eq!(
        etcd.get("/gateway/lock/secured"),
        None,
        "the lease was revoked as gw"
    );
}

#[test]
fn a_wrong_password_exits_78_naming_the_endpoint_and_frees_the_port() {
    let pki = Pki::new();
    let Some(etcd) = secured_etcd(&pki, false, true) else {
        return;
    };
    let ca = pki.ca_file();
    let args = ["--cluster-ca", ca.to_str().unwrap(), "--cluster-user", "gw"];
    let wrong = "not-the-password";
    let mut gateway = spawn(&etcd.url(), "secured", &args, Some(wrong));
    let (code, stderr) = refused(&mut gateway);
    assert_eq!(code, Some(78), "{stderr}");
    assert_eq!(
        first_line(&stderr),
        format!(
            "GatewayLockError: cannot use the cluster lock at {}: etcdserver: authentication failed, invalid user ID or password",
            etcd.url()
        )
    );
    assert!(!stderr.contains(wrong), "{stderr}");
}

#[test]
fn without_cluster_user_an_etcd_with_authentication_on_is_refused_with_78_saying_so() {
    let pki = Pki::new();
    let Some(etcd) = secured_etcd(&pki, false, true) else {
        return;
    };
    let ca = pki.ca_file();
    let mut gateway = spawn(
        &etcd.url(),
        "secured",
        &["--cluster-ca", ca.to_str().unwrap()],
        None,
    );
    let (code, stderr) = refused(&mut gateway);
    assert_eq!(code, Some(78), "{stderr}");
    let line = first_line(&stderr);
    assert!(
        line.starts_with(&format!(
            "GatewayLockError: cannot use the cluster lock at {}: ",
            etcd.url()
        )) && line.ends_with("(etcd has authentication on: give --cluster-user)"),
        "{stderr}"
    );
}

#[test]
fn a_standby_with_a_wrong_password_exits_78_too_instead_of_waiting() {
    let pki = Pki::new();
    let Some(etcd) = secured_etcd(&pki, false, true) else {
        return;
    };
    let ca = pki.ca_file();
    let args = [
        "--cluster-ca",
        ca.to_str().unwrap(),
        "--cluster-user",
        "gw",
        "--standby",
    ];
    let mut gateway = spawn(&etcd.url(), "secured", &args, Some("not-the-password"));
    let (code, stderr) = refused(&mut gateway);
    assert_eq!(code, Some(78), "{stderr}");
    let prefix = format!(
        "GatewayLockError: cannot use the cluster lock at {}: ",
        etcd.url()
    );
    assert!(first_line(&stderr).starts_with(&prefix), "{stderr}");
}

#[test]
fn a_user_whose_role_does_not_reach_the_gateway_prefix_exits_78_permission_denied() {
    let pki = Pki::new();
    let Some(etcd) = secured_etcd(&pki, false, true) else {
        return;
    };
    etcd.add_user_without_the_gateway_prefix("outsider", "outsider-Pass-2");
    let ca = pki.ca_file();
    let args = [
        "--cluster-ca",
        ca.to_str().unwrap(),
        "--cluster-user",
        "outsider",
    ];
    let mut gateway = spawn(&etcd.url(), "secured", &args, Some("outsider-Pass-2"));
    let (code, stderr) = refused(&mut gateway);
    assert_eq!(code, Some(78), "{stderr}");
    assert_eq!(
        first_line(&stderr),
        format!(
            "GatewayLockError: cannot use the cluster lock at {}: etcdserver: permission denied",
            etcd.url()
        )
    );
}

#[test]
fn a_ca_that_did_not_sign_etcds_certificate_exits_78() {
    let pki = Pki::new();
    let Some(etcd) = secured_etcd(&pki, false, false) else {
        return;
    };
    let stranger = Pki::new();
    let ca = stranger.ca_file();
    let mut gateway = spawn(
        &etcd.url(),
        "secured",
        &["--cluster-ca", ca.to_str().unwrap()],
        None,
    );
    let (code, stderr) = refused(&mut gateway);
    assert_eq!(code, Some(78), "{stderr}");
    let line = first_line(&stderr);
    let prefix = format!(
        "GatewayLockError: cannot use the cluster lock at {}: TLS: invalid peer certificate",
        etcd.url()
    );
    assert!(line.starts_with(&prefix), "{line}");
}

#[test]
fn an_unreachable_https_etcd_exits_75() {
    let closed = format!("https://127.0.0.1:{}", free_port());
    let mut gateway = spawn(&closed, "secured", &[], None);
    let (code, stderr) = refused(&mut gateway);
    assert_eq!(code, Some(75), "{stderr}");
    assert_eq!(
        first_line(&stderr),
        format!("GatewayLockError: cannot reach the cluster lock at {closed}: connection refused")
    );
}

#[test]
fn etcd_requiring_client_certificates_admits_a_gateway_with_one_and_refuses_one_without() {
    let pki = Pki::new();
    let Some(etcd) = secured_etcd(&pki, true, true) else {
        return;
    };
    let ca = pki.ca_file();
    // No CN: with authentication on, etcd's JSON gateway refuses (400) a client
    // certificate with a CN, which it could not use as the user (docs/security.md).
    let (cert, key) = pki.issue_as("gateway", None);
    let user = ["--cluster-ca", ca.to_str().unwrap(), "--cluster-user", "gw"];
    let client = [
        "--cluster-cert",
        cert.to_str().unwrap(),
        "--cluster-cert-key",
        key.to_str().unwrap(),
    ];
    let mut with = spawn(
        &etcd.url(),
        "mtls",
        &[&user[..], &client].concat(),
        Some(GW_PASSWORD),
    );
    with.wait_healthy();
    let health = http_get(with.port, "/healthz").unwrap().json();
    assert_eq!(health["cluster"]["role"], "active", "{health}");

    let mut without = spawn(&etcd.url(), "mtls-other", &user, Some(GW_PASSWORD));
    let (code, stderr) = refused(&mut without);
    assert_eq!(code, Some(78), "{stderr}");
    let line = first_line(&stderr);
    let prefix = format!(
        "GatewayLockError: cannot use the cluster lock at {}: TLS: ",
        etcd.url()
    );
    assert!(line.starts_with(&prefix), "{line}");
}

#[test]
fn an_active_gateway_whose_etcd_user_is_deleted_steps_down_and_exits_75() {
    let pki = Pki::new();
    let Some(etcd) = secured_etcd(&pki, false, true) else {
        return;
    };
    let ca = pki.ca_file();
    let args = ["--cluster-ca", ca.to_str().unwrap(), "--cluster-user", "gw"];
    let mut gateway = spawn(&etcd.url(), "secured", &args, Some(GW_PASSWORD));
    gateway.wait_healthy();
    etcd.etcdctl_ok(&["user", "delete", "gw"]);

    // Within a keep-alive round (TTL/8), not at the lease's end.
    let exit = gateway.wait_exit();
    let stderr = gateway.stderr_now();
    assert_eq!(exit.code(), Some(75), "{stderr}");
    let lost = format!(
        "cluster lock lost (cannot use the cluster lock at {}: etcdserver: authentication failed, invalid user ID or password)",
        etcd.url()
    );
    assert!(stderr.contains(&lost), "{stderr}");
    assert!(port_is_free(gateway.port));
}

#[test]
fn the_systemd_credential_gives_the_password_before_the_variable() {
    let pki = Pki::new();
    let Some(etcd) = secured_etcd(&pki, false, true) else {
        return;
    };
    let credentials = TempDir::new("credentials");
    let file = credentials.path().join("gateway-cluster-password");
    std::fs::write(&file, format!("{GW_PASSWORD}\n")).unwrap();
    let ca = pki.ca_file();
    let args = [
        "--cluster-etcd",
        &etcd.url(),
        "--cluster-ca",
        ca.to_str().unwrap(),
        "--cluster-user",
        "gw",
    ];
    let mut gateway = Gateway::spawn_with(free_port(), &args, |command| {
        command
            .env("CREDENTIALS_DIRECTORY", credentials.path())
            .env("GATEWAY_CLUSTER_PASSWORD", "not-the-password");
    });
    gateway.wait_healthy();
    let health = http_get(gateway.port, "/healthz").unwrap().json();
    assert_eq!(health["cluster"]["role"], "active", "{health}");
}

#[test]
fn an_https_url_for_a_plain_etcd_exits_75_asking_whether_it_speaks_plain_http() {
    let Some(etcd) = Etcd::start() else { return };
    let url = etcd.url().replace("http://", "https://");
    let mut gateway = spawn(&url, "plain", &[], None);
    let (code, stderr) = refused(&mut gateway);
    assert_eq!(code, Some(75), "{stderr}");
    assert_eq!(
        first_line(&stderr),
        format!(
            "GatewayLockError: cannot reach the cluster lock at {url}: closed during the TLS handshake (does this endpoint speak plain http://?)"
        )
    );
}

#[test]
fn a_cluster_user_without_a_password_is_refused_before_the_bind() {
    let url = format!("https://127.0.0.1:{}", free_port());
    let mut gateway = spawn(&url, "secured", &["--cluster-user", "gw"], None);
    let (code, stderr) = refused(&mut gateway);
    assert_eq!(code, Some(78), "{stderr}");
    assert_eq!(
        first_line(&stderr),
        "GatewayConfigError: --cluster-user gw needs a password: set GATEWAY_CLUSTER_PASSWORD or the systemd credential gateway-cluster-password"
    );
}

#[test]
fn a_restart_over_https_as_an_etcd_user_keeps_the_lease_and_its_fencing_token() {
    let pki = Pki::new();
    let Some(etcd) = secured_etcd(&pki, false, true) else {
        return;
    };
    let ca = pki.ca_file();
    let args = ["--cluster-ca", ca.to_str().unwrap(), "--cluster-user", "gw"];
    let mut gateway = spawn(&etcd.url(), "handed", &args, Some(GW_PASSWORD));
    gateway.wait_healthy();
    let port = gateway.port;
    let cluster = || http_get(port, "/healthz").map(|r| r.json());
    let token = cluster().unwrap()["cluster"]["fencingToken"].clone();
    let old_pid = gateway.child.id();

    gateway.signal(Signal::SIGHUP);
    wait_until("the successor to serve", || {
        cluster().is_some_and(|h| h["pid"] != old_pid && h["pid"].is_u64())
    });
    let successor = cluster().unwrap()["pid"].as_u64().unwrap() as u32;
    let _successor_guard = KillPidOnDrop(successor);
    assert_eq!(gateway.wait_exit().code(), Some(0));
    // Past the lease's TTL (4 s): the successor, logged in on its own, keeps it alive.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < until {
        let health = cluster().expect("the successor answers");
        assert_eq!(health["cluster"]["role"], "active", "{health}");
        assert_eq!(health["cluster"]["fencingToken"], token, "{health}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
