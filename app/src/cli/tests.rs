//! The command line's unit tests: defaults, conflicts, usage errors, `--help`.

use super::*;
use clap::error::ErrorKind;

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
    let cluster = cli.run.cluster;
    assert_eq!(
        cluster.cluster_etcd,
        ["http://127.0.0.1:2379", "http://[::1]:2380"]
    );
    assert_eq!(cluster.cluster_key.unwrap().as_str(), "chat");
    assert_eq!(cluster.cluster_ttl, 4);
    assert!(cluster.standby);
    assert!(parse(&[]).unwrap().run.cluster.cluster_etcd.is_empty());
}

#[test]
fn https_endpoints_take_a_ca_a_client_certificate_and_a_user() {
    let cli = parse(&[
        "--cluster-etcd",
        "https://etcd-1:2379,https://10.0.0.6:2379",
        "--cluster-ca",
        "/etc/gateway/etcd-ca.pem",
        "--cluster-cert",
        "/etc/gateway/gw.pem",
        "--cluster-cert-key",
        "/etc/gateway/gw.key",
        "--cluster-user",
        "gw",
    ])
    .unwrap();
    let cluster = cli.run.cluster;
    assert_eq!(
        cluster.cluster_etcd,
        ["https://etcd-1:2379", "https://10.0.0.6:2379"]
    );
    assert_eq!(cluster.cluster_user.as_deref(), Some("gw"));
    assert!(cluster.cluster_cert_key.is_some());
    assert_eq!(cluster.check(), Ok(()));
}

#[test]
fn mixed_schemes_and_tls_files_for_http_are_refused_after_parsing() {
    let mixed = parse(&["--cluster-etcd", "https://a:2379,b:2379"]).unwrap();
    assert!(mixed.run.cluster.check().unwrap_err().contains("mixes"));
    let plain = parse(&["--cluster-etcd", "a:2379", "--cluster-ca", "/ca.pem"]).unwrap();
    assert!(
        plain
            .run
            .cluster
            .check()
            .unwrap_err()
            .contains("need https://")
    );
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
        &["--cluster-etcd", "unix://127.0.0.1:2379"],
        &["--cluster-ca", "/ca.pem"],
        &["--cluster-user", "gw"],
        &["--cluster-etcd", "https://a:1", "--cluster-cert", "/c.pem"],
        &[
            "--cluster-etcd",
            "https://a:1",
            "--cluster-cert-key",
            "/c.key",
        ],
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

#[test]
fn the_handoff_timeout_is_10s_unless_given_from_1_to_3600() {
    assert_eq!(parse(&[]).unwrap().run.handoff_timeout, 10);
    assert_eq!(
        parse(&["--handoff-timeout", "3"])
            .unwrap()
            .run
            .handoff_timeout,
        3
    );
    for bad in ["0", "3601", "soon"] {
        let error = parse(&["--handoff-timeout", bad]).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::ValueValidation, "{bad}");
        assert!(error.to_string().contains("from 1 to 3600"), "{error}");
    }
}
