//! The gateway's life: take the lock (bind, or adopt what a handoff or systemd
//! passed), lock the profile, serve, then either stop in the contract's order or hand
//! everything to a successor. Only wiring: every decision is in `gateway-domain`.

use gateway_domain::ports::ServiceNotifier;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use gateway_adapters::handoff::session_channel::SenderSlot;
use gateway_adapters::handoff::{ControlSocket, ExecLauncher, HeldDescriptors, Predecessor};
use gateway_adapters::signals::{RestartSignal, RestartTriggers, StopSignals};
use gateway_adapters::{
    GatewayServer, ProfileLockGuard, ProtocolTimings, RestartHistory, ServerSettings,
    SystemdNotifier,
};
use gateway_core::{Serving, Supervisor, finish};
use gateway_domain::handoff::SuccessorWord;
use gateway_domain::ports::StopTrigger;
use gateway_domain::profile::ProfileName;
use gateway_domain::protocol;
use gateway_domain::{Endpoint, ExitCode, GatewayIdentity};
use tokio::net::TcpListener;

use crate::cli::RunArgs;
use crate::cluster::{self, Cluster};
use crate::exposure::Exposure;
use crate::start::{EarlyPort, Holdings, check_start, make_room_for_connections, take_the_lock};

/// Where this process was started from, for starting its successor.
pub struct Executable {
    /// The program path (see `gateway_adapters::handoff::launch::program_path`).
    pub program: PathBuf,
    /// The arguments after the program name.
    pub args: Vec<OsString>,
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
    let (state_dir, mut exposure) = match check_start(&args) {
        Ok(checked) => checked,
        Err(code) => return code,
    };
    exposure.warn();
    let holdings = match take_the_lock(&args, &exposure, &profile, &state_dir, early).await {
        Ok(holdings) => holdings,
        Err(code) => return code,
    };
    // After the port and the profile, the cluster lock (when asked for). A refusal
    // drops the holdings: port and profile are released before exiting.
    let endpoint = holdings.listeners[0].0;
    let access = exposure.cluster_access.take();
    let inherited = holdings.inherited_lease;
    let cluster = match cluster::join(&args.cluster, &profile, endpoint, inherited, access).await {
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
    /// The token and TLS it serves with.
    exposure: Exposure,
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
        exposure,
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
    let session_channel = SenderSlot::default();
    let launcher = match hold_for_successor(&listeners, &profile_lock, control.as_ref()) {
        Ok(held) => successors(executable, held, handoffs, &cluster, &session_channel),
        Err(error) => {
            tracing::error!(%error, "cannot keep copies of the listeners for restarts");
            return ExitCode::RuntimeFailure;
        }
    };
    let takeover = predecessor.as_ref().map(|_| started.elapsed());
    let settings = server_settings(
        (&args, &exposure),
        &profile,
        endpoint,
        started,
        &cluster,
        (handoffs, takeover),
    );
    let server = GatewayServer::serve(listeners, settings).move_sessions_through(session_channel);
    if let (Some(channel), Some(predecessor)) = (sessions, predecessor.as_ref()) {
        server.take_sessions(channel, predecessor.pid());
    }
    let notifier = SystemdNotifier;
    announce(endpoint, predecessor.as_mut(), &notifier);
    tracing::info!(profile = %profile, state_dir = %state_dir.display(), "profile locked");

    let mut restarts = RestartTriggers::new(restart_signal, control);
    let predecessor_alive = || predecessor.as_ref().is_some_and(Predecessor::still_running);
    let serving = Serving {
        gateway: &server,
        notifier: &notifier,
        membership: &*cluster.membership,
    };
    let supervisor = Supervisor {
        serving,
        launcher: &launcher,
        successor_deadline: Duration::from_secs(args.handoff_timeout),
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

/// What starts this process's successor at a restart: the same executable and
/// arguments, copies of everything held, the lease lent at each launch, the channel
/// through which the sessions will move.
fn successors(
    executable: Executable,
    held: HeldDescriptors,
    handoffs: u64,
    cluster: &Cluster,
    session_channel: &SenderSlot,
) -> ExecLauncher {
    let lender = Arc::clone(&cluster.membership);
    ExecLauncher::new(executable.program, executable.args, held)
        .after_handoffs(handoffs)
        .with_lease(Box::new(move || lender.lend()))
        .with_session_channel(Arc::clone(session_channel))
}

/// The server's settings from the command line and what this process holds.
fn server_settings(
    (args, exposure): (&RunArgs, &Exposure),
    profile: &ProfileName,
    endpoint: Endpoint,
    started: Instant,
    cluster: &Cluster,
    (handoffs, takeover): (u64, Option<Duration>),
) -> ServerSettings {
    ServerSettings {
        identity: GatewayIdentity {
            pid: std::process::id(),
            port: endpoint.port(),
            profile: profile.to_string(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        },
        token: exposure.token(),
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
        tls: exposure.tls.clone(),
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
