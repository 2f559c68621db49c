//! What `--help` and the man pages say beyond the flags: the version with its commit,
//! the environment variables and the exit codes.

use clap::CommandFactory;

use super::Cli;

/// `0.1.0 (abc1234 2026-12-07)`, or `0.1.0` when the build had no git to ask
/// (`app/build.rs`).
pub const VERSION_WITH_COMMIT: &str = env!("GATEWAY_VERSION_WITH_COMMIT");

/// Environment variables read without a flag of their own (the others are named by
/// their flags' `env`): name and meaning, for `--help` and the man page.
pub const ENVIRONMENT_WITHOUT_FLAG: [(&str, &str); 5] = [
    (
        "CREDENTIALS_DIRECTORY",
        "Set by systemd (LoadCredential=): its gateway-token file gives the token, unless \
         --token or --token-file does; its gateway-cluster-password file gives the password \
         of --cluster-user, before GATEWAY_CLUSTER_PASSWORD.",
    ),
    (
        "GATEWAY_CLUSTER_PASSWORD",
        "Password of --cluster-user (etcd), unless the credential gateway-cluster-password \
         gives it. There is no flag: the command line is visible to every local user.",
    ),
    (
        "GATEWAY_LOG",
        "Log filter in tracing's EnvFilter syntax, e.g. debug or warn,gateway=debug (default: info).",
    ),
    (
        "NOTIFY_SOCKET",
        "Set by systemd (Type=notify): READY=1 is sent once the gateway serves, STOPPING=1 when it stops.",
    ),
    (
        "XDG_STATE_HOME",
        "Base of the profiles' state directories: $XDG_STATE_HOME/gateway/<profile> \
         (default: ~/.local/state/gateway/<profile>).",
    ),
];

/// What each exit code means, for `--help` and the man page.
pub const EXIT_CODES: [(u8, &str); 8] = [
    (
        0,
        "clean stop, or handed over to a new process; status: running; stop: stopped; restart: restarted",
    ),
    (
        1,
        "runtime failure, shutdown timeout, second signal; stop: timed out; restart: the new process failed (the old one still serves)",
    ),
    (2, "usage error"),
    (3, "status/stop/restart: nothing running"),
    (
        4,
        "status/stop/restart: the port is held by something that is not a gateway",
    ),
    (71, "bind failed for a reason other than \"in use\""),
    (
        75,
        "port held by something not confirmed as a gateway (temporary); cluster lock unreachable or lost; restart: one already in progress",
    ),
    (
        78,
        "another gateway holds the port, the profile or the cluster key, the configuration is refused, \
         or etcd refuses the gateway's credentials or certificates (do not restart)",
    ),
];

/// Every environment variable the gateway reads, with its meaning: the flags' `env`
/// first (with the flag they mirror), then [`ENVIRONMENT_WITHOUT_FLAG`].
pub fn environment(command: &clap::Command) -> Vec<(String, String)> {
    let mut seen = Vec::new();
    let mut variables = Vec::new();
    let commands = std::iter::once(command).chain(command.get_subcommands());
    for arg in commands.flat_map(clap::Command::get_arguments) {
        let (Some(env), Some(long)) = (arg.get_env(), arg.get_long()) else {
            continue;
        };
        let name = env.to_string_lossy().into_owned();
        if !seen.contains(&name) {
            seen.push(name.clone());
            variables.push((name, format!("As --{long}.")));
        }
    }
    variables.extend(
        ENVIRONMENT_WITHOUT_FLAG
            .iter()
            .map(|(name, meaning)| ((*name).to_owned(), (*meaning).to_owned())),
    );
    variables
}

/// The full command definition: the derive's, with the environment and exit codes
/// appended to `--help`.
pub fn command() -> clap::Command {
    let command = Cli::command();
    let variables = environment(&command);
    let width = variables
        .iter()
        .map(|(name, _)| name.len())
        .max()
        .unwrap_or(0);
    let mut help = String::from("Environment:\n");
    for (name, meaning) in variables {
        help.push_str(&format!("  {name:<width$}  {meaning}\n"));
    }
    help.push_str("\nExit codes:\n");
    for (code, meaning) in EXIT_CODES {
        help.push_str(&format!("  {code:<3} {meaning}\n"));
    }
    command.after_help(help)
}
