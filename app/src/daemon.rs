//! The gateway's life: bind first, lock the profile, serve, then stop in the
//! contract's order. Only wiring: every decision is in `gateway-domain`.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gateway_adapters::fd_limit;
use gateway_adapters::{
    FileProfileLocker, GatewayServer, HttpHolderProbe, ProcPortOwners, ServerSettings,
    SystemdNotifier, TcpBinder,
};
use gateway_domain::config::check_exposure;
use gateway_domain::lock_policy::Refusal;
use gateway_domain::port_lock::HeldPort;
use gateway_domain::profile::{self, LockRecord, ProfileName};
use gateway_domain::{Endpoint, ExitCode, GatewayIdentity, GatewayLockError, ServiceNotifier};
use tokio::net::TcpListener;

use crate::cli::RunArgs;
use crate::cluster::Cluster;
use crate::force;
use crate::shutdown::{ShutdownSequence, StopOutcome};
use crate::signals::StopSignals;
use crate::start::{take_port_lock, take_profile_lock};

/// Runs the gateway until it stops; returns the process exit code.
pub async fn run(args: RunArgs, started: Instant) -> ExitCode {
    let port = args.target.port();
    let profile = args.target.profile();
    if let Err(refused) = check_exposure(args.bind, port, args.token.as_deref()) {
        eprintln!("{}", refused.headline());
        return ExitCode::Refused;
    }
    let Some(state_dir) = state_dir(&args, &profile) else {
        eprintln!(
            "gateway: no state directory for profile \"{profile}\": set --state-dir or GATEWAY_STATE_DIR"
        );
        return ExitCode::Usage;
    };
    let endpoint = Endpoint::new(args.bind, port);

    // The bind is the lock: it comes before any other start-up work.
    let held = match bind(endpoint, args.force).await {
        Ok(held) => held,
        Err(refusal) => return report_details(&refusal),
    };
    let pid = std::process::id();
    let record = LockRecord {
        pid,
        url: endpoint.to_string(),
        port,
        started_unix_ms: unix_ms(),
    };
    let profile_lock = match take_profile_lock(&FileProfileLocker, &profile, &state_dir, &record) {
        Ok(guard) => guard,
        Err(refusal) => {
            drop(held); // release the port before saying so
            eprintln!("{}", refusal.error.headline());
            return report_details(&refusal);
        }
    };
    // Section 7: after the port and the profile, the cluster lock (when asked for).
    let cluster = match Cluster::join(&args, &profile, endpoint, pid).await {
        Ok(cluster) => cluster,
        Err(code) => {
            drop(profile_lock);
            drop(held);
            return code;
        }
    };
    make_room_for_connections(args.max_connections);
    if let Some(missing) = &held.ipv6_loopback_missing {
        tracing::info!(%missing, "no IPv6 loopback on this host; holding {endpoint} only");
    }

    let mut signals = match StopSignals::install() {
        Ok(signals) => signals,
        Err(error) => {
            tracing::error!(%error, "cannot install signal handlers");
            return ExitCode::RuntimeFailure;
        }
    };
    let server = GatewayServer::serve(
        held.listeners,
        ServerSettings {
            identity: GatewayIdentity {
                pid,
                port,
                profile: profile.to_string(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
            },
            token: args.token.clone().filter(|t| !t.is_empty()),
            started,
            allowed_origins: args.allow_origins.clone(),
            loopback_hosts_only: endpoint.is_loopback(),
            max_connections: args.max_connections as usize,
            cluster: cluster.gate(),
        },
    );
    tracing::info!("gateway listening on {endpoint} (pid {pid})");
    tracing::info!(profile = %profile, state_dir = %state_dir.display(), "profile locked");
    let notifier = SystemdNotifier;
    notifier.ready();

    let lock_lost = tokio::select! {
        signal = signals.next() => {
            tracing::info!("{signal} received; stopping (send it again to exit at once)");
            false
        }
        () = cluster.until_lost() => {
            tracing::error!("cluster lock lost; stopping");
            true
        }
    };
    let sequence = ShutdownSequence {
        deadline: Duration::from_secs(args.shutdown_timeout),
    };
    let fenced = cluster.fenced(&server);
    let code = tokio::select! {
        outcome = sequence.run(&fenced, &notifier) => match outcome {
            // A lost cluster lock is temporary: a supervisor may restart (75).
            StopOutcome::Clean if lock_lost => ExitCode::PortHeld,
            StopOutcome::Clean => ExitCode::Clean,
            StopOutcome::TimedOut => ExitCode::RuntimeFailure,
        },
        second = signals.next() => {
            tracing::warn!("{second} received during the stop; exiting now");
            ExitCode::RuntimeFailure
        }
    };
    // Step 5: the profile lock goes last, once the port is free.
    drop(profile_lock);
    code
}

/// The profile's state directory, from the flag, the environment or the home directory.
fn state_dir(args: &RunArgs, profile: &ProfileName) -> Option<PathBuf> {
    profile::state_dir(
        args.state_dir.as_deref(),
        std::env::var_os("XDG_STATE_HOME")
            .map(PathBuf::from)
            .as_deref(),
        std::env::home_dir().as_deref(),
        profile,
    )
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
/// first line is printed the moment the bind fails.
async fn bind(endpoint: Endpoint, force: bool) -> Result<HeldPort<TcpListener>, Refusal> {
    let probe = HttpHolderProbe::default();
    let announce = |error: &GatewayLockError| eprintln!("{}", error.headline());
    let refusal =
        match take_port_lock(&TcpBinder, &probe, &ProcPortOwners, endpoint, announce).await {
            Ok(held) => return Ok(held),
            Err(refusal) => refusal,
        };
    let Some(taken) = refusal.port_in_use().filter(|_| force) else {
        return Err(refusal);
    };
    if let Err(why) = force::evict(taken, &ProcPortOwners).await {
        eprintln!("gateway: {why}");
        return Err(refusal);
    }
    take_port_lock(&TcpBinder, &probe, &ProcPortOwners, endpoint, announce).await
}

/// Prints what follows a refusal's first line (already printed), and its exit code.
fn report_details(refusal: &Refusal) -> ExitCode {
    for line in refusal.report_lines().iter().skip(1) {
        eprintln!("{line}");
    }
    refusal.exit_code()
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
