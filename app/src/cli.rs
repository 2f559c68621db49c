//! The command line, as the contract spells it. Every parse failure is a usage error:
//! clap prints it on stderr and exits 2 before anything is bound.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use gateway_domain::cluster::ClusterKey;
use gateway_domain::config::{self, DEV_PROFILE};
use gateway_domain::profile::ProfileName;

#[derive(Debug, Parser)]
#[command(
    name = "gateway",
    version,
    args_conflicts_with_subcommands = true,
    about = "A local WebSocket control plane and HTTP health surface on one port; the port is the lock.",
    after_help = "Exit codes: 0 clean stop, 1 runtime failure or shutdown timeout, 2 usage error, \
                  3 nothing running (status/stop), 4 port held by a non-gateway (status/stop), \
                  71 bind failed, 75 port held by something else (temporary), \
                  75 also: cluster lock unreachable or lost, \
                  78 another gateway holds the port, profile or cluster key, or configuration refused."
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
}

/// Which gateway: by port, or by profile (whose default port is used).
#[derive(Debug, Args)]
pub struct Target {
    /// TCP port [default: 18789, or 19001 with --dev].
    #[arg(long, env = "GATEWAY_PORT", value_parser = parse_port)]
    pub port: Option<u16>,

    /// Profile name: its own state directory and lock.
    #[arg(long, env = "GATEWAY_PROFILE", value_parser = parse_profile)]
    pub profile: Option<ProfileName>,

    /// Profile `dev` on port 19001.
    #[arg(long)]
    pub dev: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub target: Target,

    /// IP address to bind (an IP literal, not a host name).
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub bind: IpAddr,

    /// State directory of the profile.
    #[arg(long, env = "GATEWAY_STATE_DIR")]
    pub state_dir: Option<PathBuf>,

    /// Token every WebSocket `connect` must carry (required off loopback).
    #[arg(long, env = "GATEWAY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// An extra Origin allowed to open the WebSocket, e.g. https://app.example.com (repeatable).
    #[arg(long = "allow-origin", value_name = "ORIGIN", value_parser = parse_origin)]
    pub allow_origins: Vec<String>,

    /// Open connections beyond which new ones get 503 (keeps file descriptors in reserve).
    #[arg(long, value_name = "N", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,

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
          value_delimiter = ',', value_parser = parse_etcd_url)]
    pub cluster_etcd: Vec<String>,

    /// The name the gateways compete for [default: the profile name].
    #[arg(long, env = "GATEWAY_CLUSTER_KEY", requires = "cluster_etcd",
          value_parser = parse_cluster_key)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
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

    /// The port, by the contract's precedence (`--port` > `GATEWAY_PORT` > profile).
    pub fn port(&self) -> u16 {
        config::resolve_port(self.port, None, self.profile().as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("gateway").chain(args.iter().copied()))
    }

    fn env_free() -> bool {
        ["GATEWAY_PORT", "GATEWAY_PROFILE"]
            .iter()
            .all(|v| std::env::var_os(v).is_none())
    }

    #[test]
    fn defaults_are_loopback_and_the_default_profile_and_port() {
        let cli = parse(&[]).unwrap();
        assert_eq!(cli.run.bind, IpAddr::V4(Ipv4Addr::LOCALHOST));
        if env_free() {
            assert_eq!(cli.run.target.profile().as_str(), "default");
            assert_eq!(cli.run.target.port(), config::DEFAULT_PORT);
        }
    }

    #[test]
    fn dev_means_the_dev_profile_and_port() {
        let cli = parse(&["--dev"]).unwrap();
        assert_eq!(cli.run.target.profile().as_str(), "dev");
        if env_free() {
            assert_eq!(cli.run.target.port(), config::DEV_PORT);
        }
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
        if std::env::var_os("GATEWAY_CLUSTER_ETCD").is_none() {
            assert!(parse(&[]).unwrap().run.cluster_etcd.is_empty());
        }
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
}
