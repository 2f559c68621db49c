//! The command line, as docs/reference.md#starting spells it. Every parse failure is a usage error:
//! clap prints it on stderr and exits 2 before anything is bound. The same definition
//! renders `--help`, the shell completions and the man pages.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{Args, FromArgMatches, Parser, Subcommand, ValueEnum};
use gateway_domain::config::{self, DEV_PROFILE};
use gateway_domain::handoff;
use gateway_domain::profile::{self, ProfileName};
use gateway_domain::protocol;

mod cluster_args;
mod help;
mod parse;
#[cfg(test)]
mod tests;

pub use cluster_args::ClusterArgs;
pub use help::{ENVIRONMENT_WITHOUT_FLAG, EXIT_CODES, VERSION_WITH_COMMIT, command, environment};
use parse::*;

#[derive(Debug, Parser)]
#[command(
    name = "gateway",
    version,
    args_conflicts_with_subcommands = true,
    about = "A local WebSocket control plane and HTTP health surface on one port; the port is the lock.",
    long_about = "A local WebSocket control plane and HTTP health surface on one port; the port is the lock.\n\n\
        Without a subcommand, gateway binds its port (default ws://127.0.0.1:18789) as an exclusive \
        listener and serves /healthz, /readyz and the WebSocket protocol on it until SIGTERM or SIGINT. \
        A second gateway on the same port, or on the same profile, is refused with exit 78. \
        The status, stop and restart subcommands find, stop and restart the gateway on a port."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Tell whether a gateway runs on the port (exit 0), nothing does (3), or something else (4).
    Status(StatusArgs),
    /// Stop the gateway on the port with SIGTERM and wait until the port is free.
    Stop(StopArgs),
    /// Restart the gateway on the port by handing its sockets and profile lock to a new
    /// process (no connection refused); exit 0 restarted, 1 failed (the old one still
    /// serves), 75 a restart already in progress.
    Restart(RestartArgs),
    /// Print a shell completion script on stdout, e.g. `gateway completions bash`.
    Completions(CompletionsArgs),
}

/// Which gateway: by address and port, or by profile.
#[derive(Debug, Args)]
pub struct Target {
    /// TCP port [default: 18789, or 19001 with --dev].
    #[arg(long, env = "GATEWAY_PORT", value_parser = naming_its_variable(parse_port))]
    pub port: Option<u16>,

    /// Profile name: its own state directory and lock.
    #[arg(long, env = "GATEWAY_PROFILE", value_parser = naming_its_variable(parse_profile))]
    pub profile: Option<ProfileName>,

    /// Profile `dev` on port 19001 (an alternative to --profile).
    #[arg(long, conflicts_with = "profile")]
    pub dev: bool,

    /// IP address of the gateway (an IP literal, not a host name).
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub bind: IpAddr,

    /// State directory of the profile.
    #[arg(long, env = "GATEWAY_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub target: Target,

    /// Token every WebSocket `connect` must carry (required off loopback). On the
    /// command line any local user can read it: prefer --token-file.
    #[arg(long, env = "GATEWAY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// File holding the token (a trailing newline is ignored). Precedence: --token >
    /// --token-file > the systemd credential gateway-token > GATEWAY_TOKEN.
    #[arg(long, env = "GATEWAY_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// Whether `token` came from the command line rather than GATEWAY_TOKEN (set
    /// after parsing: the two rank differently, and only the first is visible to all).
    #[arg(skip)]
    pub token_on_command_line: bool,

    /// PEM certificate chain, leaf first: the port then speaks TLS only (https://, wss://).
    #[arg(
        long,
        env = "GATEWAY_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert; refused when readable by group or others.
    #[arg(
        long,
        env = "GATEWAY_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// Serve plaintext off loopback, because a TLS proxy in front terminates TLS
    /// (one warning at start).
    #[arg(long)]
    pub allow_plaintext: bool,

    /// An extra Origin allowed to open the WebSocket, e.g. https://app.example.com (repeatable).
    #[arg(long = "allow-origin", value_name = "ORIGIN", value_parser = parse_origin)]
    pub allow_origins: Vec<String>,

    /// Open connections beyond which new ones get 503 (keeps file descriptors in reserve).
    #[arg(long, value_name = "N", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,

    /// MiB that WebSocket messages still arriving may hold, over all connections;
    /// a message that would go over it closes its connection (1013, try again later).
    #[arg(long, value_name = "N", default_value_t = protocol::DEFAULT_MAX_BUFFERED_MB as u32,
          value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    pub max_buffered_mb: u32,

    /// Seconds the graceful stop may take before the gateway exits anyway (code 1).
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub shutdown_timeout: u64,

    /// Seconds a restart's new process has to serve before it is killed and this
    /// gateway serves on.
    #[arg(long, value_name = "SECS", env = "GATEWAY_HANDOFF_TIMEOUT",
          default_value_t = handoff::SUCCESSOR_DEADLINE.as_secs(),
          value_parser = naming_its_variable(parse_handoff_timeout))]
    pub handoff_timeout: u64,

    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Take the port from whatever holds it (SIGTERM, then SIGKILL after 2 s).
    #[arg(long)]
    pub force: bool,

    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub target: Target,

    /// Print one JSON object instead of a summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    #[command(flatten)]
    pub target: Target,

    /// Seconds to wait for the port to be free before giving up (exit 1).
    #[arg(long, value_name = "SECS", default_value_t = 15)]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct RestartArgs {
    #[command(flatten)]
    pub target: Target,

    /// Seconds to wait for the outcome of the handoff before giving up (exit 1).
    #[arg(long, value_name = "SECS", default_value_t = 15)]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    pub shell: CompletionShell,
}

/// The shells whose completions the package installs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Cli {
    /// Parses the process's arguments; on a usage error clap prints it and exits 2.
    pub fn parse_args() -> Self {
        // `--version` names the commit; the man pages (rendered from `command()`) keep
        // the bare version, so they do not go stale with every commit.
        let mut command = command().version(VERSION_WITH_COMMIT);
        let mut matches = command.get_matches_mut();
        let token_on_command_line = matches.value_source("token") == Some(ValueSource::CommandLine);
        let mut cli = Self::from_arg_matches_mut(&mut matches)
            .unwrap_or_else(|error| error.format(&mut command).exit());
        cli.run.token_on_command_line = token_on_command_line;
        if let Err(message) = cli.run.cluster.check() {
            command
                .error(clap::error::ErrorKind::ArgumentConflict, message)
                .exit();
        }
        cli
    }
}

impl Target {
    /// The profile: `--dev` wins, then `--profile`/`GATEWAY_PROFILE`, then `default`.
    pub fn profile(&self) -> ProfileName {
        let name = if self.dev {
            DEV_PROFILE
        } else {
            self.profile
                .as_ref()
                .map_or(config::DEFAULT_PROFILE, ProfileName::as_str)
        };
        ProfileName::parse(name).unwrap_or_else(|_| unreachable!("validated by clap or a constant"))
    }

    /// The profile the user named (`--profile`, `GATEWAY_PROFILE` or `--dev`), if any:
    /// an operation then acts only on that profile's gateway.
    pub fn named_profile(&self) -> Option<ProfileName> {
        (self.dev || self.profile.is_some()).then(|| self.profile())
    }

    /// The profile's state directory, from the flag or environment, else under
    /// `$XDG_STATE_HOME` or the home directory; `None` when none is known.
    pub fn state_dir(&self) -> Option<PathBuf> {
        self.state_dir_of(&self.profile())
    }

    /// The state directory of `profile` (another profile than this target's, e.g. the
    /// one a running gateway reports), unless the directory was given explicitly.
    pub fn state_dir_of(&self, profile: &ProfileName) -> Option<PathBuf> {
        profile::state_dir(
            self.state_dir.as_deref(),
            std::env::var_os("XDG_STATE_HOME")
                .map(PathBuf::from)
                .as_deref(),
            std::env::home_dir().as_deref(),
            profile,
        )
    }

    /// The port a start binds (`--port` > `GATEWAY_PORT` > the profile's default).
    pub fn port(&self) -> u16 {
        config::resolve_port(self.port, None, self.profile().as_str())
    }

    /// The port an operation looks at: as for a start, except that a profile's held lock
    /// file, when there is one, names the port its gateway runs on.
    pub fn port_with_held_lock(&self, held_lock_port: Option<u16>) -> u16 {
        config::resolve_port(self.port, held_lock_port, self.profile().as_str())
    }
}
