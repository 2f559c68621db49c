//! `gateway stop`: SIGTERM to the gateway on the port, after checking it is one, then
//! wait until the port is free and the process gone.

use gateway_domain::ports::ProcessControl;
use std::time::Duration;

use tokio::time::Instant;

use gateway_adapters::SystemProcesses;
use gateway_adapters::holder_probe::is_accepting;
use gateway_domain::port_status::{StopPlan, plan_stop};
use gateway_domain::process_control::StopSignal;
use gateway_domain::{Endpoint, ExitCode};

use crate::cli::StopArgs;
use crate::status;

const POLL: Duration = Duration::from_millis(10);
const CONNECT_BUDGET: Duration = Duration::from_millis(200);

pub async fn run(args: StopArgs) -> ExitCode {
    let observed = status::observe_target(&args.target).await;
    let endpoint = observed.endpoint;
    match plan_stop(&observed) {
        StopPlan::NothingRunning => {
            println!("no gateway running on {endpoint}");
            ExitCode::NotRunning
        }
        StopPlan::LeaveAlone { reason } => {
            eprintln!("gateway stop: {reason}");
            ExitCode::ForeignHolder
        }
        StopPlan::AwaitStop { pid } => {
            println!("gateway pid {pid} on {endpoint} is already stopping; waiting");
            await_stop(endpoint, pid, args.timeout).await
        }
        StopPlan::Terminate { pid } => {
            if let Err(error) = SystemProcesses.signal(pid, StopSignal::Terminate) {
                eprintln!("gateway stop: cannot signal gateway pid {pid}: {error}");
                return ExitCode::RuntimeFailure;
            }
            await_stop(endpoint, pid, args.timeout).await
        }
    }
}

/// Waits until the port refuses connections and the process is gone.
async fn await_stop(endpoint: Endpoint, pid: u32, timeout_secs: u64) -> ExitCode {
    let deadline = Instant::now() + Duration::from_secs(timeout_secs);
    loop {
        let port_free = !is_accepting(endpoint, CONNECT_BUDGET).await;
        if port_free && !SystemProcesses.is_alive(pid) {
            println!("stopped gateway pid {pid} on {endpoint}");
            return ExitCode::Clean;
        }
        if Instant::now() >= deadline {
            eprintln!("gateway stop: gateway pid {pid} still running after {timeout_secs}s");
            return ExitCode::RuntimeFailure;
        }
        tokio::time::sleep(POLL).await;
    }
}
