//! The gateway's life: take the lock (bind, or adopt what a handoff or systemd
//! passed), lock the profile, serve, then either stop in the contract's order or hand
//! everything to a successor. Only wiring: every decision is in `gateway-domain`.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gateway_adapters::handoff::{
    ControlSocket, ExecLauncher, HeldDescriptors, Inheritance, Predecessor, RestartRequest,
    take_handoff, take_socket_activation,
};
use gateway_adapters::unix_time::unix_ms;
use gateway_adapters::{
    FileProfileLocker, GatewayServer, HttpHolderProbe, ProcPortOwners, ProfileLockGuard,
    ProtocolTimings, RestartHistory, ServerSettings, SystemdNotifier, TcpBinder, fd_limit,
};
use gateway_domain::handoff::{
    HANDOFF_ENV, HandoffOutcome, InheritedLease, RestartAnswer, RestartGate, SUCCESSOR_DEADLINE,
    SuccessorWord, hand_over,
};
use gateway_domain::lock_policy::Refusal;
use gateway_domain::port_lock::HeldPort;
use gateway_domain::profile::{LockRecord, ProfileName};
use gateway_domain::protocol::{self, goodbye};
use gateway_domain::{Endpoint, ExitCode, GatewayIdentity, GatewayLockError, ServiceNotifier};
use tokio::net::TcpListener;

use crate::cli::RunArgs;
use crate::cluster::Cluster;
use crate::exposure::{self, Exposure};
use crate::force;
use crate::shutdown::{ShutdownSequence, StopOutcome};
use crate::signals::{RestartSignal, StopSignals};
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
fn check_start(args: &RunArgs) -> Result<(PathBuf, Exposure), ExitCode> {
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

/// Runs the gateway until it stops or hands over; returns the process exit code.
pub async fn run(
    args: RunArgs,
    started: Instant,
    executable: Executable,
    early: Option<EarlyPort>,
) -> ExitCode {
    // Caught first: SIGHUP's default action would end the process.
    let (mut stop_signals, mut restart_signal) =
        match (StopSignals::install(), RestartSignal::install()) {
            (Ok(stop), Ok(restart)) => (stop, restart),
            (Err(error), _) | (_, Err(error)) => {
                eprintln!("gateway: cannot install signal handlers: {error}");
                return ExitCode::RuntimeFailure;
            }
        };
    let profile = args.target.profile();
    let (state_dir, exposure) = match check_start(&args) {
        Ok(checked) => checked,
        Err(code) => return code,
    };
    exposure.warn();
    let holdings = match take_the_lock(&args, &exposure, &profile, &state_dir, early).await {
        Ok(holdings) => holdings,
        Err(code) => return code,
    };
    // Section 7: after the port and the profile, the cluster lock (when asked for).
    // A refusal drops the holdings: port and profile are released before exiting.
    let cluster = match Cluster::join(
        &args,
        &profile,
        holdings.listeners[0].0,
        std::process::id(),
        holdings.inherited_lease,
    )
    .await
    {
        Ok(cluster) => cluster,
        Err(code) => return code,
    };
    let launch = Launch {
        args,
        profile,
        state_dir,
        started,
        executable,
        exposure,
    };
    serve(
        launch,
        holdings,
        cluster,
        (&mut stop_signals, &mut restart_signal),
    )
    .await
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
    /// The token and TLS it serves with.
    exposure: Exposure,
}

/// The three ways into serving: a handoff's inheritance, systemd's sockets, or a
/// bind of our own. Each ends holding the port, the profile and (if it can) the
/// control socket; a refusal is reported here and becomes the exit code.
async fn take_the_lock(
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

/// What ended serving.
enum Ending {
    /// A stop signal: the contract's stop.
    Stop(&'static str),
    /// A successor serves: let go.
    HandedOver,
    /// The cluster lock was lost (without `--standby`): stop, exit 75.
    ClusterLockLost,
}

/// Serves until a stop signal or a completed handoff, then ends accordingly.
async fn serve(
    launch: Launch,
    holdings: Holdings,
    cluster: Cluster,
    (stop_signals, restart_signal): (&mut StopSignals, &mut RestartSignal),
) -> ExitCode {
    let Launch {
        args,
        profile,
        state_dir,
        started,
        executable,
        exposure,
    } = launch;
    let Holdings {
        listeners,
        profile_lock,
        control,
        mut predecessor,
        inherited_lease: _,
        handoffs,
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
    let mut launcher =
        ExecLauncher::new(executable.program, executable.args, held).after_handoffs(handoffs);
    if let Some(lease) = cluster.lease_source() {
        launcher = launcher.with_lease(lease);
    }
    let pid = std::process::id();
    let server = GatewayServer::serve(
        listeners,
        ServerSettings {
            identity: GatewayIdentity {
                pid,
                port: endpoint.port(),
                profile: profile.to_string(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
            },
            token: exposure.token(),
            started,
            allowed_origins: args.allow_origins.clone(),
            loopback_hosts_only: endpoint.is_loopback(),
            max_connections: args.max_connections as usize,
            cluster: cluster.gate(),
            timings: ProtocolTimings::default(),
            restarts: RestartHistory {
                handed_over: handoffs,
                takeover: predecessor.as_ref().map(|_| started.elapsed()),
            },
            max_buffered_bytes: (args.max_buffered_mb as usize).saturating_mul(1024 * 1024),
            message_timeout: Duration::from_millis(protocol::MESSAGE_TIMEOUT_MS),
            tls: exposure.tls,
        },
    );
    let notifier = SystemdNotifier;
    match predecessor.as_mut() {
        Some(predecessor) => {
            tracing::info!(
                version = %env!("CARGO_PKG_VERSION"),
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
                version = %env!("CARGO_PKG_VERSION"),
                url = %endpoint,
                pid,
                "gateway listening on {endpoint} (pid {pid})"
            );
            notifier.ready();
        }
    }
    tracing::info!(profile = %profile, state_dir = %state_dir.display(), "profile locked");

    let mut gate = RestartGate::default();
    // The handoff in progress, and who asked for it.
    let mut handoff = None;
    let mut asker: Option<RestartRequest> = None;
    // Keeps the cluster lock in a task of its own from its first poll: created once.
    let cluster_lost = cluster.until_lost();
    tokio::pin!(cluster_lost);
    // Set once the cluster lock is lost while a handoff is under way: the handoff's
    // outcome decides (a successor that serves has the lease; otherwise stop, 75).
    let mut lock_lost_during_handoff = false;
    let ending = loop {
        let next_request = async {
            match &control {
                Some(control) => control.next_request().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            signal = stop_signals.next() => break Ending::Stop(signal),
            () = &mut cluster_lost, if !lock_lost_during_handoff => {
                if handoff.is_none() {
                    tracing::error!("cluster lock lost; stopping");
                    break Ending::ClusterLockLost;
                }
                tracing::warn!("cluster lock lost during a restart; waiting for the new process's word");
                lock_lost_during_handoff = true;
            }
            () = restart_signal.next() => {
                if let Err(refusal) = begin(&mut gate, predecessor.as_ref(), &notifier, "SIGHUP") {
                    tracing::warn!("SIGHUP ignored: {refusal}");
                } else {
                    handoff = Some(Box::pin(hand_over(&launcher, SUCCESSOR_DEADLINE)));
                }
            }
            request = next_request => {
                match begin(&mut gate, predecessor.as_ref(), &notifier, "gateway restart") {
                    Err(refusal) => {
                        tracing::warn!("restart request refused: {refusal}");
                        request.answer(&RestartAnswer::Busy { message: refusal.to_owned() }).await;
                    }
                    Ok(()) => {
                        asker = Some(request);
                        handoff = Some(Box::pin(hand_over(&launcher, SUCCESSOR_DEADLINE)));
                    }
                }
            }
            outcome = async { handoff.as_mut().expect("guarded").await }, if handoff.is_some() => {
                handoff = None;
                match outcome {
                    HandoffOutcome::HandedOver { new_pid } => {
                        cluster.handoff_settled(true);
                        tracing::info!("handed over to pid {new_pid}; letting go");
                        notifier.handed_over(new_pid);
                        if let Some(asker) = asker.take() {
                            asker.answer(&RestartAnswer::Restarted { old_pid: pid, new_pid }).await;
                        }
                        break Ending::HandedOver;
                    }
                    HandoffOutcome::Failed(failure) => {
                        cluster.handoff_settled(false);
                        if lock_lost_during_handoff {
                            tracing::error!("{failure}; and the cluster lock was lost: stopping");
                            if let Some(asker) = asker.take() {
                                asker.answer(&RestartAnswer::Failed {
                                    reason: failure.reason,
                                    output: failure.output,
                                }).await;
                            }
                            break Ending::ClusterLockLost;
                        }
                        tracing::error!("{failure}; still serving as pid {pid}");
                        server.restart_failed();
                        notifier.ready();
                        gate.end();
                        if let Some(asker) = asker.take() {
                            asker.answer(&RestartAnswer::Failed {
                                reason: failure.reason,
                                output: failure.output,
                            }).await;
                        }
                    }
                }
            }
        }
    };
    // A successor abandoned mid-way (a stop signal during a handoff) is killed here,
    // before it said it serves (a handoff that completed is not pending): the lease it
    // was lent is this process's again, for the stop to revoke.
    let abandoned = handoff.is_some();
    drop(handoff);
    if abandoned {
        cluster.handoff_settled(false);
    }
    // This process's copies of the listeners go before the listeners themselves, so
    // that releasing them frees the port (or leaves it to the successor alone).
    drop(launcher);
    drop(control);
    let sequence = ShutdownSequence {
        deadline: Duration::from_secs(args.shutdown_timeout),
    };
    let lock_lost = matches!(ending, Ending::ClusterLockLost);
    // The stop revokes the cluster lease once the WebSocket clients are gone.
    let fenced = cluster.fenced(&server);
    let finishing = async {
        match ending {
            Ending::Stop(signal) => {
                tracing::info!("{signal} received; stopping (send it again to exit at once)");
                sequence.run(&fenced, &notifier, goodbye::STOPPING).await
            }
            Ending::ClusterLockLost => {
                sequence
                    .run(&fenced, &notifier, goodbye::CLUSTER_LOCK_LOST)
                    .await
            }
            Ending::HandedOver => sequence.hand_over(&server).await,
        }
    };
    let code = tokio::select! {
        outcome = finishing => match outcome {
            // A lost cluster lock is temporary: a supervisor may restart (75).
            StopOutcome::Clean if lock_lost => ExitCode::PortHeld,
            StopOutcome::Clean => ExitCode::Clean,
            StopOutcome::TimedOut => ExitCode::RuntimeFailure,
        },
        second = stop_signals.next() => {
            tracing::warn!("{second} received during the stop; exiting now");
            ExitCode::RuntimeFailure
        }
    };
    // The profile lock goes last, once the port is free (after a handoff, the
    // successor's descriptor keeps it held).
    drop(profile_lock);
    code
}

/// Takes the one restart slot, or says why not; announces the reload.
fn begin(
    gate: &mut RestartGate,
    predecessor: Option<&Predecessor>,
    notifier: &dyn ServiceNotifier,
    trigger: &str,
) -> Result<(), &'static str> {
    gate.try_begin(predecessor.is_some_and(Predecessor::still_running))?;
    tracing::info!("{trigger}: restarting by handoff");
    notifier.reloading();
    Ok(())
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
