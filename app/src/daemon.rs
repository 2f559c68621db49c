//! The gateway's life: bind first, then serve, then stop in the contract's order.
//! Only wiring: every decision is in `gateway-domain`.

use std::time::{Duration, Instant};

use gateway_adapters::{
    GatewayServer, HttpHolderProbe, ServerSettings, SystemdNotifier, TcpBinder,
};
use gateway_domain::config::check_exposure;
use gateway_domain::{Endpoint, ExitCode, GatewayIdentity, ServiceNotifier};

use crate::cli::Cli;
use crate::shutdown::{ShutdownSequence, StopOutcome};
use crate::signals::StopSignals;
use crate::start::take_port_lock;

/// Runs the gateway until it stops; returns the process exit code.
pub async fn run(cli: Cli, started: Instant) -> ExitCode {
    let port = cli.port();
    if let Err(refused) = check_exposure(cli.bind, port, cli.token.as_deref()) {
        eprintln!("{}", refused.headline());
        return ExitCode::Refused;
    }
    let endpoint = Endpoint::new(cli.bind, port);

    // The bind is the lock: it comes before any other start-up work.
    let held = match take_port_lock(&TcpBinder, &HttpHolderProbe, endpoint).await {
        Ok(held) => held,
        Err(refusal) => {
            for line in refusal.report_lines() {
                eprintln!("{line}");
            }
            return refusal.exit_code();
        }
    };
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
    let pid = std::process::id();
    let server = GatewayServer::serve(
        held.listeners,
        ServerSettings {
            identity: GatewayIdentity {
                pid,
                port,
                profile: cli.profile(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
            },
            token: cli.token.clone().filter(|t| !t.is_empty()),
            started,
        },
    );
    tracing::info!("gateway listening on {endpoint} (pid {pid})");
    let notifier = SystemdNotifier;
    notifier.ready();

    let signal = signals.next().await;
    tracing::info!("{signal} received; stopping (send it again to exit at once)");
    let sequence = ShutdownSequence {
        deadline: Duration::from_secs(cli.shutdown_timeout),
    };
    tokio::select! {
        outcome = sequence.run(&server, &notifier) => match outcome {
            StopOutcome::Clean => ExitCode::Clean,
            StopOutcome::TimedOut => ExitCode::RuntimeFailure,
        },
        second = signals.next() => {
            tracing::warn!("{second} received during the stop; exiting now");
            ExitCode::RuntimeFailure
        }
    }
}
