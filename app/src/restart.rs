//! `gateway restart`: find and check the gateway as `stop` does, ask it through its
//! control socket to hand over to a new process, and report the outcome.

use std::time::Duration;

use gateway_adapters::handoff::{CONTROL_SOCKET_NAME, request_restart};
use gateway_domain::ExitCode;
use gateway_domain::handoff::RestartAnswer;
use gateway_domain::port_status::{PortState, StopPlan, plan_stop};
use gateway_domain::profile::ProfileName;

use crate::cli::RestartArgs;
use crate::status;

pub async fn run(args: RestartArgs) -> ExitCode {
    let endpoint = status::endpoint(&args.target);
    let observed = status::observe(endpoint).await;
    let pid = match plan_stop(&observed) {
        StopPlan::NothingRunning => {
            println!("no gateway running on {endpoint}");
            return ExitCode::NotRunning;
        }
        StopPlan::LeaveAlone { reason } => {
            eprintln!("gateway restart: {reason}");
            return ExitCode::ForeignHolder;
        }
        StopPlan::AwaitStop { pid } => {
            eprintln!("restart failed: gateway pid {pid} on {endpoint} is stopping");
            return ExitCode::RuntimeFailure;
        }
        StopPlan::Terminate { pid } => pid,
    };
    // The control socket is in the state directory of the gateway's own profile:
    // the one asked for, else the one it reports.
    let explicit = args.target.profile.is_some() || args.target.dev;
    let profile = match &observed.state {
        PortState::Running(report) if !explicit => {
            ProfileName::parse(&report.profile).unwrap_or_else(|_| args.target.profile())
        }
        _ => args.target.profile(),
    };
    let Some(socket) = args
        .target
        .state_dir_of(&profile)
        .map(|dir| dir.join(CONTROL_SOCKET_NAME))
    else {
        eprintln!(
            "restart failed: no state directory for profile \"{profile}\": set --state-dir or GATEWAY_STATE_DIR"
        );
        return ExitCode::RuntimeFailure;
    };
    match request_restart(&socket, Duration::from_secs(args.timeout)).await {
        Ok(RestartAnswer::Restarted { old_pid, new_pid }) => {
            println!("restarted gateway on {endpoint}: pid {old_pid} -> pid {new_pid}");
            ExitCode::Clean
        }
        Ok(RestartAnswer::Failed { reason, output }) => {
            eprintln!("restart failed: {reason}");
            for line in output {
                eprintln!("  {line}");
            }
            eprintln!("  gateway pid {pid} still serves on {endpoint}");
            ExitCode::RuntimeFailure
        }
        Ok(RestartAnswer::Busy { message }) => {
            eprintln!("{message}");
            ExitCode::PortHeld
        }
        Err(error) => {
            eprintln!(
                "restart failed: cannot reach the control socket of gateway pid {pid} at {}: {error}",
                socket.display()
            );
            eprintln!(
                "  give the gateway's --state-dir (or GATEWAY_STATE_DIR), or send it SIGHUP: kill -HUP {pid}"
            );
            ExitCode::RuntimeFailure
        }
    }
}
