//! `gateway restart`: find and check the gateway by its port, as `stop` does, ask it
//! through its control socket (one of that very process's descriptors) to hand over
//! to a new process, and report the outcome.

use std::time::Duration;

use gateway_adapters::handoff::{ControlError, request_restart};
use gateway_domain::ExitCode;
use gateway_domain::handoff::RestartAnswer;
use gateway_domain::port_status::{StopPlan, plan_stop};

use crate::cli::RestartArgs;
use crate::status;

pub async fn run(args: RestartArgs) -> ExitCode {
    let observed = status::observe_target(&args.target).await;
    let endpoint = observed.endpoint;
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
    match request_restart(pid, Duration::from_secs(args.timeout)).await {
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
        Err(ControlError::NoOutcome { within }) => {
            eprintln!(
                "restart failed: no outcome within {}s; the handoff goes on (see the gateway's log)",
                within.as_secs()
            );
            ExitCode::RuntimeFailure
        }
        Err(error) => {
            eprintln!("restart failed: {error}");
            eprintln!("  send it SIGHUP instead: kill -HUP {pid}");
            ExitCode::RuntimeFailure
        }
    }
}
