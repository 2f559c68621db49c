//! From the process's arguments to its exit code: the operations (`status`, `stop`,
//! `restart`, `completions`) and the daemon, each on the runtime it needs.

use tokio::time::Instant;

use gateway_domain::ExitCode;

use crate::cli::{Cli, Command};
use crate::{completions, daemon, logging, restart, start, status, stop};

/// Runs what the command line asks for; returns the process's exit code.
/// `started` is when the process began (uptime, the takeover's duration).
pub fn run(started: Instant) -> ExitCode {
    let mut argv = std::env::args_os();
    let executable = daemon::Executable {
        program: argv
            .next()
            .map(|argv0| gateway_adapters::handoff::launch::program_path(&argv0))
            .unwrap_or_else(|| "/proc/self/exe".into()),
        args: argv.collect(),
    };
    let cli = Cli::parse_args();
    match cli.command {
        Some(Command::Status(args)) => serve_on_runtime(status::run(args)),
        Some(Command::Stop(args)) => serve_on_runtime(stop::run(args)),
        Some(Command::Restart(args)) => serve_on_runtime(restart::run(args)),
        Some(Command::Completions(args)) => completions::run(&args),
        None => {
            // The bind is the first start-up work: it is done on a runtime without worker
            // threads, so a refused start exits before the serving runtime exists, and
            // before logging is set up, which a refusal (plain stderr lines) never uses.
            let early = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(start::take_port_early(&cli.run)),
                Err(_) => Ok(None),
            };
            match early {
                Ok(taken) => {
                    logging::init(cli.run.log_format);
                    serve_on_runtime(daemon::run(cli.run, started, executable, taken))
                }
                Err(code) => code,
            }
        }
    }
}

/// Runs `work` on the serving runtime, then drops the runtime without waiting for
/// its blocking threads: one may be stuck starting a restart's new process (an
/// `exec` that hangs), which must never keep this process from exiting.
fn serve_on_runtime(work: impl Future<Output = ExitCode>) -> ExitCode {
    let runtime = serving_runtime();
    let code = runtime.block_on(work);
    runtime.shutdown_background();
    code
}

/// The multi-threaded runtime everything but the first bind runs on.
fn serving_runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("gateway: cannot start the async runtime: {error}");
            std::process::exit(ExitCode::RuntimeFailure.code());
        }
    }
}
