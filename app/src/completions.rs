//! `gateway completions SHELL`: the shell completion script, rendered from the same
//! command definition that parses the arguments.

use std::io::Write;

use clap_complete::Shell;
use gateway_domain::ExitCode;

use crate::cli::{self, CompletionShell, CompletionsArgs};

/// The completion script for `shell`.
pub fn script(shell: CompletionShell) -> Vec<u8> {
    let shell = match shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cli::command(), "gateway", &mut script);
    script
}

/// Prints the script on stdout. A reader that went away early (`| head`) is not an error.
pub fn run(args: &CompletionsArgs) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(&script(args.shell))
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ExitCode::Clean,
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::Clean,
        Err(error) => {
            eprintln!("gateway: cannot write the completion script: {error}");
            ExitCode::RuntimeFailure
        }
    }
}
