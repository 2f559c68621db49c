//! `gateway`: parse the command line, run, exit with the contract's code.

mod cli;
mod daemon;
mod logging;
mod shutdown;
mod signals;
mod start;

use std::time::Instant;

use clap::Parser;

fn main() {
    let started = Instant::now();
    let cli = cli::Cli::parse();
    logging::init(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("gateway: cannot start the async runtime: {error}");
            std::process::exit(gateway_domain::ExitCode::RuntimeFailure.code());
        }
    };
    let code = runtime.block_on(daemon::run(cli, started));
    // Exit without waiting for stragglers: whatever is left was already given up on,
    // and the OS releases the port and every lock with the process.
    std::process::exit(code.code());
}
