//! The gateway's life: take the lock (bind, or adopt what a handoff or systemd
//! passed), lock the profile, serve, then either stop in order (docs/reference.md#stopping) or hand
//! everything to a successor. Only wiring: every decision is in `gateway-domain`.

use std::ffi::OsString;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use std::sync::Arc;

use gateway_adapters::handoff::session_channel::SenderSlot;
use gateway_adapters::handoff::{
    ControlSocket, ExecLauncher, HeldDescriptors, Inheritance, Predecessor, take_handoff,
    take_socket_activation,
};
use gateway_adapters::signals::{RestartSignal, RestartTriggers, StopSignals};
use gateway_adapters::unix_time::unix_ms;
use gateway_adapters::{
    FileProfileLocker, GatewayServer, HttpHolderProbe, ProcPortOwners, ProfileLockGuard,
    ProtocolTimings, RestartHistory, ServerSettings, SystemdNotifier, TcpBinder, fd_limit,
};
use gateway_core::{Serving, Supervisor, finish};
use gateway_domain::config::check_exposure;
use gateway_domain::handoff::{HANDOFF_ENV, InheritedLease, SUCCESSOR_DEADLINE, SuccessorWord};
use gateway_domain::lock_policy::Refusal;
use gateway_domain::port_lock::HeldPort;
use gateway_domain::ports::StopTrigger;
use gateway_domain::profile::{LockRecord, ProfileName};
use gateway_domain::protocol;
use gateway_domain::{Endpoint, ExitCode, GatewayIdentity, GatewayLockError, ServiceNotifier};
use tokio::net::TcpListener;

use crate::cli::RunArgs;
use crate::cluster::{self, Cluster};
use crate::force;
use crate::start::{take_port_lock, take_profile_lock};

/// Where this process was started from, for starting its successor.
pub struct Executable {
    /// The program path (see `gateway_adapters::handoff::launch::program_path`).
    pub program: PathBuf,
    /// The arguments after the program name.
    pub args: Vec<OsString>,
}

/// Everything a gateway holds once it may serve: the lock in all its forms.
struct Holdings {
    /// The listening sockets, the requested endpoint first.
    listeners: Vec<(Endpoint, TcpListener)>,
    /// The profile lock, held until the very end.
    profile_lock: ProfileLockGuard,
    /// The socket `gateway restart` talks to, when it could be had.
    control: Option<ControlSocket>,
    /// Set when this process took over from another by a handoff.
    predecessor: Option<Predecessor>,
    /// The cluster lease that predecessor held as the active gateway.
    inherited_lease: Option<InheritedLease>,
    /// How many handoffs led to this process (0 for a fresh start).
    handoffs: u64,
    /// The predecessor's session channel, when it moves its sessions here.
    sessions: Option<OwnedFd>,
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
    check_start(args)?;
    let endpoint = Endpoint::new(args.target.bind, args.target.port());
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

/// The refusals that come before any bind: a non-loopback bind without a token (78),
/// no state directory at all (2). Returns the state directory.
fn check_start(args: &RunArgs) -> Result<PathBuf, ExitCode> {
    let profile = args.target.profile();
    if let Err(refused) =
        check_exposure(args.target.bind, args.target.port(), args.token.as_deref())
    {
        eprintln!("{}", refused.headline());
        return Err(ExitCode::Refused);
    }
    args.target.state_dir().ok_or_else(|| {
        eprintln!(
            "gateway: no state directory for profile \"{profile}\": set --state-dir or GATEWAY_STATE_DIR"
        );
        ExitCode::Usage
    })
}

/// Runs the gateway until it stops or hands over; returns the process exit code.
pub async fn run(
    args: RunArgs,
    started: Instant,
    executable: Executable,
    early: Option<EarlyPort>,
) -> ExitCode {
    // Caught first: SIGHUP's default action would end the process.
    let (mut stop_signals, restart_signal) =
        match (StopSignals::install(), RestartSignal::install()) {
            (Ok(stop), Ok(restart)) => (stop, restart),
            (Err(error), _) | (_, Err(error)) => {
                eprintln!("gateway: cannot install signal handlers: {error}");
                return ExitCode::RuntimeFailure;
            }
        };
    run_with(
        (args, started, executable),
        early,
        &mut stop_signals,
        Some(restart_signal),
    )
    .await
}

/// The daemon's life with the stop and restart triggers given: the signals for the
/// binary, channels for in-process tests. `launch.profile` and `launch.state_dir`
/// are resolved here from the arguments.
pub async fn run_with(
    (args, started, executable): (RunArgs, Instant, Executable),
    early: Option<EarlyPort>,
    stops: &mut dyn StopTrigger,
    restart_signal: Option<RestartSignal>,
) -> ExitCode {
    let profile = args.target.profile();
    let state_dir = match check_start(&args) {
        Ok(state_dir) => state_dir,
        Err(code) => return code,
    };
    let holdings = match take_the_lock(&args, &profile, &state_dir, early).await {
        Ok(holdings) => holdings,
        Err(code) => return code,
    };
    // After the port and the profile, the cluster lock (when asked for). A refusal
    // drops the holdings: port and profile are released before exiting.
    let endpoint = holdings.listeners[0].0;
    let cluster = match cluster::join(&args, &profile, endpoint, holdings.inherited_lease).await {
        Ok(cluster) => cluster,
        Err(code) => return code,
    };
    let launch = Launch {
        args,
        profile,
        state_dir,
        started,
        executable,
    };
    serve(launch, holdings, cluster, (stops, restart_signal)).await
}

/// How this process was started: what serving needs besides what it holds.
struct Launch {
    args: RunArgs,
    profile: ProfileName,
    state_dir: PathBuf,
    /// When the process started, for uptime and the takeover's duration.
    started: Instant,
    /// Where it was started from, for its successor.
    executable: Executable,
}

/// The three ways into serving: a handoff's inheritance, systemd's sockets, or a
/// bind of our own. Each ends holding the port, the profile and (if it can) the
/// control socket; a refusal is reported here and becomes the exit code.
async fn take_the_lock(
    args: &RunArgs,
    profile: &ProfileName,
    state_dir: &Path,
    early: Option<EarlyPort>,
) -> Result<Holdings, ExitCode> {
    if let Some(inherited) = take_handoff() {
        return adopt(inherited);
    }
    let listeners = match early {
        // The usual way: taken first thing, before this runtime existed.
        Some(early) => {
            note_missing_ipv6(early.ipv6_loopback_missing.as_ref(), early.listeners[0].0);
            to_tokio(early.listeners.into_iter().map(|(_, l)| l).collect())?
        }
        None => match take_socket_activation() {
            Some(Ok(listeners)) => {
                tracing::info!("serving on the sockets systemd passed (socket activation)");
                to_tokio(listeners)?
            }
            Some(Err(reason)) => {
                eprintln!("gateway: cannot use the sockets systemd passed: {reason}");
                return Err(ExitCode::RuntimeFailure);
            }
            // `--force`: the bind (and the eviction of a holder) happens here.
            None => {
                let endpoint = Endpoint::new(args.target.bind, args.target.port());
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
fn adopt(inherited: Result<Inheritance, String>) -> Result<Holdings, ExitCode> {
    let fail = |reason: String| {
        // Not eprintln!: if the predecessor is already gone, stderr is a broken pipe.
        let _ = writeln!(std::io::stderr(), "gateway: cannot take over: {reason}");
        ExitCode::RuntimeFailure
    };
    let inheritance = inherited.map_err(fail)?;
    let listeners = to_tokio(inheritance.listeners)?;
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

fn to_tokio(
    listeners: Vec<std::net::TcpListener>,
) -> Result<Vec<(Endpoint, TcpListener)>, ExitCode> {
    listeners
        .into_iter()
        .map(|listener| {
            let address = listener.local_addr()?;
            Ok((
                Endpoint::new(address.ip(), address.port()),
                TcpListener::from_std(listener)?,
            ))
        })
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|error| {
            eprintln!("gateway: cannot serve on the inherited sockets: {error}");
            ExitCode::RuntimeFailure
        })
}

/// Serves until a stop signal, a lost cluster lock or a completed handoff, then ends
/// accordingly. The life itself is `gateway_core`'s [`Supervisor`]; this builds the
/// real parts it runs on, and lets go of them in the order the port needs.
async fn serve(
    launch: Launch,
    holdings: Holdings,
    cluster: Cluster,
    (stops, restart_signal): (&mut dyn StopTrigger, Option<RestartSignal>),
) -> ExitCode {
    let Launch {
        args,
        profile,
        state_dir,
        started,
        executable,
    } = launch;
    let Holdings {
        listeners,
        profile_lock,
        control,
        mut predecessor,
        inherited_lease: _,
        handoffs,
        sessions,
    } = holdings;
    make_room_for_connections(args.max_connections);
    let endpoint = listeners[0].0;
    let held = match hold_for_successor(&listeners, &profile_lock, control.as_ref()) {
        Ok(held) => held,
        Err(error) => {
            tracing::error!(%error, "cannot keep copies of the listeners for restarts");
            return ExitCode::RuntimeFailure;
        }
    };
    let lender = Arc::clone(&cluster.membership);
    let session_channel = SenderSlot::default();
    let launcher = ExecLauncher::new(executable.program, executable.args, held)
        .after_handoffs(handoffs)
        .with_lease(Box::new(move || lender.lend()))
        .with_session_channel(Arc::clone(&session_channel));
    let takeover = predecessor.as_ref().map(|_| started.elapsed());
    let settings = server_settings(
        &args, &profile, endpoint, started, &cluster, handoffs, takeover,
    );
    let server = GatewayServer::serve(listeners, settings).move_sessions_through(session_channel);
    if let (Some(channel), Some(predecessor)) = (sessions, predecessor.as_ref()) {
        server.take_sessions(channel, predecessor.pid());
    }
    let notifier = SystemdNotifier;
    announce(endpoint, predecessor.as_mut(), &notifier);
    tracing::info!(profile = %profile, state_dir = %state_dir.display(), "profile locked");

    let mut restarts = RestartTriggers {
        signal: restart_signal,
        control,
    };
    let predecessor_alive = || predecessor.as_ref().is_some_and(Predecessor::still_running);
    let serving = Serving {
        gateway: &server,
        notifier: &notifier,
        membership: &*cluster.membership,
    };
    let supervisor = Supervisor {
        serving,
        launcher: &launcher,
        successor_deadline: SUCCESSOR_DEADLINE,
        predecessor_alive: &predecessor_alive,
    };
    let ending = supervisor.serve(stops, &mut restarts).await;
    // This process's copies of the listeners (and the control socket) go before the
    // listeners themselves, so that releasing them frees the port (or leaves it to
    // the successor alone).
    drop(launcher);
    drop(restarts);
    let shutdown_timeout = Duration::from_secs(args.shutdown_timeout);
    let code = finish(serving, shutdown_timeout, ending, stops).await;
    // The profile lock goes last, once the port is free (after a handoff, the
    // successor's descriptor keeps it held).
    drop(profile_lock);
    code
}

/// The server's settings from the command line and what this process holds.
fn server_settings(
    args: &RunArgs,
    profile: &ProfileName,
    endpoint: Endpoint,
    started: Instant,
    cluster: &Cluster,
    handoffs: u64,
    takeover: Option<Duration>,
) -> ServerSettings {
    ServerSettings {
        identity: GatewayIdentity {
            pid: std::process::id(),
            port: endpoint.port(),
            profile: profile.to_string(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        },
        token: args.token.clone().filter(|t| !t.is_empty()),
        started,
        allowed_origins: args.allow_origins.clone(),
        loopback_hosts_only: endpoint.is_loopback(),
        max_connections: args.max_connections as usize,
        cluster: cluster.gate.clone(),
        timings: ProtocolTimings::default(),
        restarts: RestartHistory {
            handed_over: handoffs,
            takeover,
        },
        max_buffered_bytes: (args.max_buffered_mb as usize).saturating_mul(1024 * 1024),
        message_timeout: Duration::from_millis(protocol::MESSAGE_TIMEOUT_MS),
    }
}

/// Says that this process serves: the listening line, then `READY=1`, or (after a
/// handoff) the word to the predecessor, which tells the service manager.
fn announce(endpoint: Endpoint, predecessor: Option<&mut Predecessor>, notifier: &SystemdNotifier) {
    let pid = std::process::id();
    let version = env!("CARGO_PKG_VERSION");
    match predecessor {
        Some(predecessor) => {
            tracing::info!(
                version = %version,
                url = %endpoint,
                pid,
                taken_over_from = predecessor.pid(),
                "gateway listening on {endpoint} (pid {pid}, taken over from pid {})",
                predecessor.pid()
            );
            // The predecessor tells the service manager (MAINPID=, READY=1).
            predecessor.say(&SuccessorWord::Serving);
        }
        None => {
            tracing::info!(
                version = %version,
                url = %endpoint,
                pid,
                "gateway listening on {endpoint} (pid {pid})"
            );
            notifier.ready();
        }
    }
}

/// Copies of everything a successor inherits.
fn hold_for_successor(
    listeners: &[(Endpoint, TcpListener)],
    profile_lock: &ProfileLockGuard,
    control: Option<&ControlSocket>,
) -> std::io::Result<HeldDescriptors> {
    use std::os::fd::AsFd;
    Ok(HeldDescriptors {
        listeners: listeners
            .iter()
            .map(|(_, listener)| listener.as_fd().try_clone_to_owned())
            .collect::<std::io::Result<_>>()?,
        lock: profile_lock.descriptor()?,
        control: control.map(ControlSocket::descriptor).transpose()?,
    })
}

/// Raises the open-files limit so the connection cap, not EMFILE, bounds clients.
fn make_room_for_connections(max_connections: u32) {
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
fn report_details(refusal: &Refusal) -> ExitCode {
    for line in refusal.report_lines().iter().skip(1) {
        eprintln!("{line}");
    }
    refusal.exit_code()
}
