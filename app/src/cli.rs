//! The command line, as docs/reference.md#starting spells it. Every parse failure is a usage error:
//! clap prints it on stderr and exits 2 before anything is bound. The same definition
//! renders `--help`, the shell completions and the man pages.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use clap::builder::TypedValueParser;
use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use gateway_domain::cluster::ClusterKey;
use gateway_domain::config::{self, DEV_PROFILE};
use gateway_domain::profile::{self, ProfileName};
use gateway_domain::protocol;

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

    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Take the port from whatever holds it (SIGTERM, then SIGKILL after 2 s).
    #[arg(long)]
    pub force: bool,

    /// etcd endpoints of the cluster lock (http://HOST:PORT, comma-separated): only
    /// one gateway per --cluster-key is active across hosts.
    #[arg(long, env = "GATEWAY_CLUSTER_ETCD", value_name = "URL[,URL]...",
          value_delimiter = ',', value_parser = naming_its_variable(parse_etcd_url))]
    pub cluster_etcd: Vec<String>,

    /// The name the gateways compete for [default: the profile name].
    #[arg(long, env = "GATEWAY_CLUSTER_KEY", requires = "cluster_etcd",
          value_parser = naming_its_variable(parse_cluster_key))]
    pub cluster_key: Option<ClusterKey>,

    /// Seconds the cluster lock's lease lives without a keep-alive.
    #[arg(long, value_name = "SECS", default_value_t = 10, requires = "cluster_etcd",
          value_parser = clap::value_parser!(u64).range(2..=3600))]
    pub cluster_ttl: u64,

    /// When another gateway is active, wait as a standby instead of exiting 78.
    #[arg(long, requires = "cluster_etcd")]
    pub standby: bool,
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

/// `0.1.0 (abc1234 2026-12-07)`, or `0.1.0` when the build had no git to ask
/// (`app/build.rs`).
pub const VERSION_WITH_COMMIT: &str = env!("GATEWAY_VERSION_WITH_COMMIT");

/// Environment variables read without a flag of their own (the others are named by
/// their flags' `env`): name and meaning, for `--help` and the man page.
pub const ENVIRONMENT_WITHOUT_FLAG: [(&str, &str); 4] = [
    (
        "CREDENTIALS_DIRECTORY",
        "Set by systemd (LoadCredential=): its gateway-token file gives the token, unless \
         --token or --token-file does.",
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
        "another gateway holds the port, the profile or the cluster key, or the configuration is refused (do not restart)",
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
        cli
    }
}

/// A value parser that names the environment variable a refused value came from:
/// clap's own message names the flag (`--port`) even when the user never typed it.
#[derive(Clone, Copy)]
struct NamingItsVariable<T> {
    /// The validation proper, shared by the flag and its variable.
    parse: fn(&str) -> Result<T, String>,
}

fn naming_its_variable<T>(parse: fn(&str) -> Result<T, String>) -> NamingItsVariable<T> {
    NamingItsVariable { parse }
}

impl<T: Clone + Send + Sync + 'static> TypedValueParser for NamingItsVariable<T> {
    type Value = T;

    fn parse_ref(
        &self,
        command: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<T, clap::Error> {
        self.parse.parse_ref(command, arg, value)
    }

    fn parse_ref_(
        &self,
        command: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
        source: ValueSource,
    ) -> Result<T, clap::Error> {
        let variable = arg.and_then(clap::Arg::get_env);
        let (ValueSource::EnvVariable, Some(variable)) = (source, variable) else {
            return self.parse_ref(command, arg, value);
        };
        let text = value.to_string_lossy();
        let reason = match value.to_str() {
            Some(text) => match (self.parse)(text) {
                Ok(parsed) => return Ok(parsed),
                Err(reason) => reason,
            },
            None => "not valid UTF-8".to_owned(),
        };
        Err(command.clone().error(
            ErrorKind::ValueValidation,
            format!(
                "invalid value '{text}' for the environment variable {}: {reason}",
                variable.to_string_lossy()
            ),
        ))
    }
}

fn parse_port(text: &str) -> Result<u16, String> {
    config::parse_port(text).map_err(|e| e.to_string())
}

fn parse_origin(text: &str) -> Result<String, String> {
    gateway_domain::guards::parse_origin(text)
}

/// An etcd endpoint: `http://HOST:PORT` or `HOST:PORT` (no TLS in this build).
fn parse_etcd_url(text: &str) -> Result<String, String> {
    let text = text.trim();
    let rest = text.strip_prefix("http://").unwrap_or(text);
    if text.starts_with("https://") {
        return Err("https etcd endpoints are not supported by this build; use http://".into());
    }
    match rest.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0) => {
            Ok(format!("http://{rest}"))
        }
        _ => Err(format!(
            "\"{text}\" is not an etcd endpoint (http://HOST:PORT)"
        )),
    }
}

fn parse_cluster_key(text: &str) -> Result<ClusterKey, String> {
    ClusterKey::parse(text).map_err(|e| e.to_string())
}

fn parse_profile(text: &str) -> Result<ProfileName, String> {
    ProfileName::parse(text).map_err(|e| e.to_string())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `args` as if the environment were empty: the command's `env` bindings
    /// are removed, so a developer's `GATEWAY_PORT` cannot change what is checked.
    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let mut matches = without_env(command())
            .try_get_matches_from(std::iter::once("gateway").chain(args.iter().copied()))?;
        Cli::from_arg_matches_mut(&mut matches)
    }

    fn without_env(command: clap::Command) -> clap::Command {
        command
            .mut_args(|arg| arg.env(None::<&'static str>))
            .mut_subcommands(without_env)
    }

    #[test]
    fn defaults_are_loopback_and_the_default_profile_and_port() {
        let cli = parse(&[]).unwrap();
        assert_eq!(cli.run.target.bind, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(cli.run.target.profile().as_str(), "default");
        assert_eq!(cli.run.target.port(), config::DEFAULT_PORT);
    }

    #[test]
    fn dev_means_the_dev_profile_and_port() {
        let cli = parse(&["--dev"]).unwrap();
        assert_eq!(cli.run.target.profile().as_str(), "dev");
        assert_eq!(cli.run.target.port(), config::DEV_PORT);
        assert_eq!(
            parse(&["--dev", "--port", "7"]).unwrap().run.target.port(),
            7
        );
    }

    #[test]
    fn status_and_stop_take_a_target() {
        let cli = parse(&["status", "--port", "9", "--json"]).unwrap();
        let Some(Command::Status(args)) = cli.command else {
            panic!("not status")
        };
        assert!(args.json);
        assert_eq!(args.target.port(), 9);
        let cli = parse(&["stop", "--dev", "--timeout", "3"]).unwrap();
        let Some(Command::Stop(args)) = cli.command else {
            panic!("not stop")
        };
        assert_eq!(args.timeout, 3);
        assert_eq!(args.target.profile().as_str(), "dev");
    }

    #[test]
    fn cluster_flags_name_endpoints_key_ttl_and_standby() {
        let cli = parse(&[
            "--cluster-etcd",
            "127.0.0.1:2379,http://[::1]:2380",
            "--cluster-key",
            "chat",
            "--cluster-ttl",
            "4",
            "--standby",
        ])
        .unwrap();
        assert_eq!(
            cli.run.cluster_etcd,
            ["http://127.0.0.1:2379", "http://[::1]:2380"]
        );
        assert_eq!(cli.run.cluster_key.unwrap().as_str(), "chat");
        assert_eq!(cli.run.cluster_ttl, 4);
        assert!(cli.run.standby);
        assert!(parse(&[]).unwrap().run.cluster_etcd.is_empty());
    }

    #[test]
    fn bad_arguments_are_usage_errors_with_exit_2() {
        for args in [
            &["--port", "http"][..],
            &["--port", "0"],
            &["--port", "65536"],
            &["--bind", "localhost"],
            &["--frobnicate"],
            &["--log-format", "xml"],
            &["--profile", ""],
            &["--profile", "../etc"],
            &["--profile", "a/b"],
            &["status", "--port", "0"],
            &["stop", "--timeout", "soon"],
            &["--allow-origin", "example.com"],
            &["--allow-origin", "https://example.com/path"],
            &["--max-connections", "0"],
            &["completions"],
            &["completions", "powershell"],
            &["completions", "bash", "zsh"],
            &["completions", "--port", "1"],
            &["--max-buffered-mb", "0"],
            &["--max-buffered-mb", "lots"],
            &["--cluster-etcd", "etcd.example"],
            &["--cluster-etcd", "https://127.0.0.1:2379"],
            &["--cluster-etcd", "127.0.0.1:2379", "--cluster-key", "a/b"],
            &["--cluster-etcd", "127.0.0.1:2379", "--cluster-ttl", "1"],
            &["--standby"],
            &["--cluster-ttl", "5"],
        ] {
            let err = parse(args).unwrap_err();
            assert_ne!(err.kind(), ErrorKind::DisplayHelp, "{args:?}");
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
        let long = "x".repeat(65);
        assert_eq!(parse(&["--profile", &long]).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn completions_name_a_shell() {
        let cli = parse(&["completions", "zsh"]).unwrap();
        let Some(Command::Completions(args)) = cli.command else {
            panic!("not completions")
        };
        assert_eq!(args.shell, CompletionShell::Zsh);
    }

    #[test]
    fn a_bad_value_from_the_environment_names_the_variable_not_the_flag() {
        // Tests must not change the process environment, so `--port` reads a variable
        // cargo and nextest always set for tests: a directory path, not a port.
        let variable = "CARGO_MANIFEST_DIR";
        let value = std::env::var(variable).expect("set by the test runner");
        for args in [&[][..], &["status"], &["stop"], &["restart"]] {
            let port_from = |arg: clap::Arg| match arg.get_id().as_str() {
                "port" => arg.env(variable),
                _ => arg,
            };
            let error = without_env(command())
                .mut_args(port_from)
                .mut_subcommands(|sub| sub.mut_args(port_from))
                .try_get_matches_from(std::iter::once("gateway").chain(args.iter().copied()))
                .unwrap_err();
            assert_eq!(error.exit_code(), 2, "{args:?}");
            let message = error.to_string();
            assert!(
                message.starts_with(&format!(
                    "error: invalid value '{value}' for the environment variable {variable}: \
                     invalid port"
                )),
                "{args:?}: {message}"
            );
            assert!(!message.contains("--port"), "{args:?}: {message}");
        }
    }

    #[test]
    fn a_bad_value_on_the_command_line_still_names_the_flag() {
        let error = parse(&["--port", "abc"]).unwrap_err().to_string();
        assert!(
            error.contains("'--port <PORT>'") && !error.contains("environment"),
            "{error}"
        );
    }

    #[test]
    fn help_mentions_restart_beside_status_and_stop() {
        let help = parse(&["--help"]).unwrap_err().to_string();
        assert!(
            help.contains("The status, stop and restart subcommands"),
            "{help}"
        );
    }

    #[test]
    fn help_aligns_the_environment_variables_meanings() {
        let help = parse(&["--help"]).unwrap_err().to_string();
        let section = help
            .split("Environment:\n")
            .nth(1)
            .and_then(|rest| rest.split("\n\n").next())
            .expect("an Environment section");
        let columns: Vec<usize> = section
            .lines()
            .map(|line| {
                let name_end = 2 + line.trim_start().find(' ').expect("name and meaning");
                name_end
                    + line[name_end..]
                        .find(|c: char| c != ' ')
                        .expect("a meaning")
            })
            .collect();
        assert!(columns.len() >= 9, "{section}");
        assert!(columns.iter().all(|&c| c == columns[0]), "{section}");
        assert!(
            section.lines().any(|line| line
                .trim_start()
                .strip_prefix("GATEWAY_CLUSTER_ETCD")
                .is_some_and(|rest| rest.trim_start() == "As --cluster-etcd.")),
            "{section}"
        );
    }

    #[test]
    fn help_lists_every_environment_variable_and_exit_code() {
        let help = parse(&["--help"]).unwrap_err();
        assert_eq!(help.kind(), ErrorKind::DisplayHelp);
        let help = help.to_string();
        for name in [
            "GATEWAY_PORT",
            "GATEWAY_PROFILE",
            "GATEWAY_STATE_DIR",
            "GATEWAY_TOKEN",
            "GATEWAY_LOG",
            "NOTIFY_SOCKET",
            "XDG_STATE_HOME",
        ] {
            assert!(
                help.contains(&format!("  {name} ")),
                "{name} missing:\n{help}"
            );
        }
        for (code, _) in EXIT_CODES {
            assert!(
                help.contains(&format!("\n  {code} ")),
                "exit {code} missing"
            );
        }
    }
}
