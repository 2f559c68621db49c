//! `gateway`: parse the command line, run the daemon or an operation, exit with the
//! contract's code.

mod cli;
mod cluster;
mod daemon;
mod force;
mod logging;
mod shutdown;
mod signals;
mod start;
mod status;
mod stop;

use std::time::Instant;

use clap::Parser;
use gateway_domain::ExitCode;

use crate::cli::{Cli, Command};

fn main() {
    let started = Instant::now();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("gateway: cannot start the async runtime: {error}");
            std::process::exit(ExitCode::RuntimeFailure.code());
        }
    };
    let code = match cli.command {
        Some(Command::Status(args)) => runtime.block_on(status::run(args)),
        Some(Command::Stop(args)) => runtime.block_on(stop::run(args)),
        None => {
            logging::init(cli.run.log_format);
            runtime.block_on(daemon::run(cli.run, started))
        }
    };
    // Exit without waiting for stragglers: whatever is left was already given up on,
    // and the OS releases the port and every lock with the process.
    std::process::exit(code.code());
}
