//! Taking the lock (docs/reference.md#starting): the refusals that come before any
//! bind, the bind itself (first thing, or after `--force` evicts a holder), or what a
//! handoff or systemd passed; then the profile lock and the control socket. The
//! decisions are the domain's (`port_lock`, `profile`, `lock_policy`); this wires them.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use gateway_adapters::fd_limit;
use gateway_adapters::handoff::{
    ControlSocket, Inheritance, Predecessor, take_handoff, take_socket_activation,
};
use gateway_adapters::unix_time::unix_ms;
use gateway_adapters::{
    FileProfileLocker, HttpHolderProbe, ProcPortOwners, ProfileLockGuard, TcpBinder,
};
use gateway_domain::handoff::{HANDOFF_ENV, InheritedLease};
use gateway_domain::lock_policy::Refusal;
use gateway_domain::port_lock::{HeldPort, take_port_lock};
use gateway_domain::profile::{LockRecord, ProfileName, take_profile_lock};
use gateway_domain::{Endpoint, ExitCode, GatewayLockError};
use tokio::net::TcpListener;

use crate::cli::RunArgs;
use crate::exposure::{self, Exposure};
use crate::force;

/// Everything a gateway holds once it may serve: the lock in all its forms.
pub struct Holdings {
    /// The listening sockets, the requested endpoint first.
    pub listeners: Vec<(Endpoint, TcpListener)>,
    /// The profile lock, held until the very end.
    pub profile_lock: ProfileLockGuard,
    /// The socket `gateway restart` talks to, when it could be had.
    pub control: Option<ControlSocket>,
    /// Set when this process took over from another by a handoff.
    pub predecessor: Option<Predecessor>,
    /// The cluster lease that predecessor held as the active gateway.
    pub inherited_lease: Option<InheritedLease>,
    /// How many handoffs led to this process (0 for a fresh start).
    pub handoffs: u64,
    /// The predecessor's session channel, when it moves its sessions here.
    pub sessions: Option<OwnedFd>,
}

/// The port, taken before anything else of the start-up and before the serving runtime
/// is built (on a runtime of its own, without worker threads): listeners, made plain std
/// sockets so they outlive that runtime.
pub struct EarlyPort {
    listeners: Vec<(Endpoint, std::net::TcpListener)>,
    ipv6_loopback_missing: Option<GatewayLockError>,
}

/// Takes the port first thing, for an ordinary start. `Ok(None)` when the port comes
/// another way (a handoff, systemd's sockets) or `--force` may have to evict a holder:
/// then [`run`] takes it as before. A refusal is reported here, with its exit code.
pub async fn take_port_early(args: &RunArgs) -> Result<Option<EarlyPort>, ExitCode> {
    let inherited = [HANDOFF_ENV, "LISTEN_FDS"]
        .iter()
        .any(|name| std::env::var_os(name).is_some());
    if inherited || args.force {
        return Ok(None);
    }
    // Refusals that come before any bind stay before it.
    let (_, exposure) = check_start(args)?;
    let endpoint = exposure.endpoint(args);
    let held = bind(endpoint, false)
        .await
        .map_err(|refusal| report_details(&refusal))?;
    let listeners = held
        .listeners
        .into_iter()
        .map(|(endpoint, listener)| Ok((endpoint, listener.into_std()?)))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|error| {
            eprintln!("gateway: cannot keep the bound listeners: {error}");
            ExitCode::RuntimeFailure
        })?;
    Ok(Some(EarlyPort {
        listeners,
        ipv6_loopback_missing: held.ipv6_loopback_missing,
    }))
}

/// The refusals that come before any bind: an exposed gateway without a token or
/// without TLS, a token or TLS file it cannot use (78), no state directory at all (2).
/// Returns the state directory and what the start exposes. A restart's new process
/// runs it too: it reads the token and TLS files again (rotation), and a refusal
/// fails the restart.
pub fn check_start(args: &RunArgs) -> Result<(PathBuf, Exposure), ExitCode> {
    let profile = args.target.profile();
    let exposure = exposure::check(args).map_err(|refused| {
        eprintln!("{}", refused.headline());
        ExitCode::Refused
    })?;
    let state_dir = args.target.state_dir().ok_or_else(|| {
        eprintln!(
            "gateway: no state directory for profile \"{profile}\": set --state-dir or GATEWAY_STATE_DIR"
        );
        ExitCode::Usage
    })?;
    Ok((state_dir, exposure))
}

/// The three ways into serving: a handoff's inheritance, systemd's sockets, or a
/// bind of our own. Each ends holding the port, the profile and (if it can) the
/// control socket; a refusal is reported here and becomes the exit code.
pub async fn take_the_lock(
    args: &RunArgs,
    exposure: &Exposure,
    profile: &ProfileName,
    state_dir: &Path,
    early: Option<EarlyPort>,
) -> Result<Holdings, ExitCode> {
    let tls = exposure.tls.is_some();
    if let Some(inherited) = take_handoff() {
        return adopt(inherited, tls);
    }
    let listeners = match early {
        // The usual way: taken first thing, before this runtime existed.
        Some(early) => {
            note_missing_ipv6(early.ipv6_loopback_missing.as_ref(), early.listeners[0].0);
            to_tokio(early.listeners.into_iter().map(|(_, l)| l).collect(), tls)?
        }
        None => match take_socket_activation() {
            Some(Ok(listeners)) => {
                tracing::info!("serving on the sockets systemd passed (socket activation)");
                to_tokio(listeners, tls)?
            }
            Some(Err(reason)) => {
                eprintln!("gateway: cannot use the sockets systemd passed: {reason}");
                return Err(ExitCode::RuntimeFailure);
            }
            // `--force`: the bind (and the eviction of a holder) happens here.
            None => {
                let endpoint = exposure.endpoint(args);
                let held = bind(endpoint, args.force)
                    .await
                    .map_err(|refusal| report_details(&refusal))?;
                note_missing_ipv6(held.ipv6_loopback_missing.as_ref(), endpoint);
                held.listeners
            }
        },
    };
    let record = LockRecord {
        pid: std::process::id(),
        url: listeners[0].0.to_string(),
        port: listeners[0].0.port(),
        started_unix_ms: unix_ms(),
    };
    let profile_lock = match take_profile_lock(&FileProfileLocker, profile, state_dir, &record) {
        Ok(guard) => guard,
        Err(refusal) => {
            drop(listeners); // release the port before saying so
            eprintln!("{}", refusal.error.headline());
            return Err(report_details(&refusal));
        }
    };
    let control = match ControlSocket::bind(listeners[0].0.port()) {
        Ok(control) => Some(control),
        Err(error) => {
            tracing::warn!(%error, "no control socket: `gateway restart` cannot reach this gateway (SIGHUP still restarts it)");
            None
        }
    };
    Ok(Holdings {
        listeners,
        profile_lock,
        control,
        predecessor: None,
        inherited_lease: None,
        handoffs: 0,
        sessions: None,
    })
}

/// One log line when the host has no IPv6 loopback for the `[::1]` companion.
fn note_missing_ipv6(missing: Option<&GatewayLockError>, endpoint: Endpoint) {
    if let Some(missing) = missing {
        tracing::info!(%missing, "no IPv6 loopback on this host; holding {endpoint} only");
    }
}

/// Takes what a handoff passed. A failure is said on stderr, which the predecessor
/// reads and reports; it keeps serving.
fn adopt(inherited: Result<Inheritance, String>, tls: bool) -> Result<Holdings, ExitCode> {
    let fail = |reason: String| {
        // Not eprintln!: if the predecessor is already gone, stderr is a broken pipe.
        let _ = writeln!(std::io::stderr(), "gateway: cannot take over: {reason}");
        ExitCode::RuntimeFailure
    };
    let inheritance = inherited.map_err(fail)?;
    let listeners = to_tokio(inheritance.listeners, tls)?;
    let record = LockRecord {
        pid: std::process::id(),
        url: listeners[0].0.to_string(),
        port: listeners[0].0.port(),
        started_unix_ms: unix_ms(),
    };
    let profile_lock = ProfileLockGuard::adopt(inheritance.lock, &record)
        .map_err(|error| fail(format!("cannot rewrite the profile lock file: {error}")))?;
    let control = match inheritance.control.map(ControlSocket::adopt).transpose() {
        Ok(control) => control,
        Err(error) => return Err(fail(format!("cannot adopt the control socket: {error}"))),
    };
    Ok(Holdings {
        listeners,
        profile_lock,
        control,
        predecessor: Some(inheritance.predecessor),
        inherited_lease: inheritance.lease,
        handoffs: inheritance.handoffs,
        sessions: inheritance.sessions,
    })
}

/// The listeners for tokio, each with its endpoint (`wss://` when `tls`).
fn to_tokio(
    listeners: Vec<std::net::TcpListener>,
    tls: bool,
) -> Result<Vec<(Endpoint, TcpListener)>, ExitCode> {
    listeners
        .into_iter()
        .map(|listener| {
            let address = listener.local_addr()?;
            Ok((
                Endpoint::new(address.ip(), address.port()).with_tls(tls),
                TcpListener::from_std(listener)?,
            ))
        })
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|error| {
            eprintln!("gateway: cannot serve on the inherited sockets: {error}");
            ExitCode::RuntimeFailure
        })
}

/// Takes the port; with `--force`, evicts a holder once and tries again. A refusal's
/// first line is printed the moment the bind fails, except under `--force`: there
/// the eviction is said instead, and the first line only when the start fails.
async fn bind(endpoint: Endpoint, force: bool) -> Result<HeldPort<TcpListener>, Refusal> {
    let probe = HttpHolderProbe::default();
    if !force {
        let announce = |error: &GatewayLockError| eprintln!("{}", error.headline());
        return take_port_lock(&TcpBinder, &probe, &ProcPortOwners, endpoint, announce).await;
    }
    let taken =
        force::take_port(|| take_port_lock(&TcpBinder, &probe, &ProcPortOwners, endpoint, |_| {}))
            .await;
    if let Err(refusal) = &taken {
        eprintln!("{}", refusal.error.headline());
    }
    taken
}

/// Prints what follows a refusal's first line (already printed), and its exit code.
pub fn report_details(refusal: &Refusal) -> ExitCode {
    for line in refusal.report_lines().iter().skip(1) {
        eprintln!("{line}");
    }
    refusal.exit_code()
}

/// Raises the open-files limit so the connection cap, not EMFILE, bounds clients.
pub fn make_room_for_connections(max_connections: u32) {
    match fd_limit::raise_open_files_limit() {
        Ok(limit) if limit < u64::from(max_connections) + fd_limit::RESERVED_DESCRIPTORS => {
            tracing::warn!(
                "the open-files limit ({limit}) is below --max-connections ({max_connections}); raise LimitNOFILE or lower the cap"
            );
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "cannot read or raise the open-files limit"),
    }
}
