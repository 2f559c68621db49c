//! The command line, as the contract spells it. Every parse failure is a usage error:
//! clap prints it on stderr and exits 2 before anything is bound.

use std::net::{IpAddr, Ipv4Addr};

use clap::{Parser, ValueEnum};
use gateway_domain::config::{self, DEV_PROFILE};

#[derive(Debug, Parser)]
#[command(
    name = "gateway",
    version,
    about = "A local WebSocket control plane and HTTP health surface on one port; the port is the lock.",
    after_help = "Exit codes: 0 clean stop, 1 runtime failure or shutdown timeout, 2 usage error, \
                  71 bind failed, 75 port held by something else (temporary), \
                  78 another gateway holds the port or configuration refused."
)]
pub struct Cli {
    /// TCP port to listen on [default: 18789, or 19001 with --dev].
    #[arg(long, env = "GATEWAY_PORT", value_parser = parse_port)]
    pub port: Option<u16>,

    /// IP address to bind (an IP literal, not a host name).
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub bind: IpAddr,

    /// Profile name: its own state directory and lock.
    #[arg(long, env = "GATEWAY_PROFILE", conflicts_with = "dev")]
    pub profile: Option<String>,

    /// Shorthand for --profile dev (port 19001).
    #[arg(long)]
    pub dev: bool,

    /// State directory of the profile.
    #[arg(long, env = "GATEWAY_STATE_DIR")]
    pub state_dir: Option<std::path::PathBuf>,

    /// Token every WebSocket `connect` must carry (required off loopback).
    #[arg(long, env = "GATEWAY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// An extra Origin allowed to open the WebSocket (repeatable).
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    pub allow_origins: Vec<String>,

    /// Seconds the graceful stop may take before the gateway exits anyway (code 1).
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub shutdown_timeout: u64,

    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Take the port from whatever holds it (SIGTERM, then SIGKILL after 2 s).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

fn parse_port(text: &str) -> Result<u16, String> {
    config::parse_port(text).map_err(|e| e.to_string())
}

impl Cli {
    /// The profile name: `--dev`, `--profile`/`GATEWAY_PROFILE`, or `default`.
    pub fn profile(&self) -> String {
        if self.dev {
            DEV_PROFILE.to_owned()
        } else {
            self.profile
                .clone()
                .unwrap_or_else(|| config::DEFAULT_PROFILE.to_owned())
        }
    }

    /// The port, by the contract's precedence (`--port` > `GATEWAY_PORT` > profile).
    pub fn port(&self) -> u16 {
        config::resolve_port(self.port, None, &self.profile())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("gateway").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_are_loopback_18789_default_profile() {
        let cli = parse(&[]).unwrap();
        assert_eq!(cli.bind, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(cli.profile(), "default");
        // GATEWAY_PORT may be set by whoever runs the tests; only check without it.
        if std::env::var_os("GATEWAY_PORT").is_none() {
            assert_eq!(cli.port(), 18789);
        }
    }

    #[test]
    fn dev_means_profile_dev_on_19001() {
        let cli = parse(&["--dev"]).unwrap();
        assert_eq!(cli.profile(), "dev");
        if std::env::var_os("GATEWAY_PORT").is_none() {
            assert_eq!(cli.port(), 19001);
        }
        assert_eq!(parse(&["--dev", "--port", "7"]).unwrap().port(), 7);
    }

    #[test]
    fn bad_arguments_are_usage_errors_with_exit_2() {
        for args in [
            &["--port", "http"][..],
            &["--port", "0"],
            &["--port", "65536"],
            &["--bind", "localhost"],
            &["--frobnicate"],
            &["--dev", "--profile", "x"],
            &["--log-format", "xml"],
        ] {
            let err = parse(args).unwrap_err();
            assert_ne!(err.kind(), ErrorKind::DisplayHelp, "{args:?}");
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }
}
