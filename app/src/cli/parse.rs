//! Value parsers of the command line: each value checked as it is read, and a refused
//! value reported under the name the user gave it (flag or environment variable).

use clap::builder::TypedValueParser;
use clap::error::ErrorKind;
use clap::parser::ValueSource;
use gateway_domain::cluster::ClusterKey;
use gateway_domain::config;
use gateway_domain::profile::ProfileName;

/// A value parser that names the environment variable a refused value came from:
/// clap's own message names the flag (`--port`) even when the user never typed it.
#[derive(Clone, Copy)]
pub(super) struct NamingItsVariable<T> {
    /// The validation proper, shared by the flag and its variable.
    parse: fn(&str) -> Result<T, String>,
}

pub(super) fn naming_its_variable<T>(parse: fn(&str) -> Result<T, String>) -> NamingItsVariable<T> {
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

pub(super) fn parse_port(text: &str) -> Result<u16, String> {
    config::parse_port(text).map_err(|e| e.to_string())
}

pub(super) fn parse_origin(text: &str) -> Result<String, String> {
    gateway_domain::guards::parse_origin(text)
}

/// An etcd endpoint: `https://HOST:PORT`, `http://HOST:PORT` or `HOST:PORT` (plain
/// HTTP), normalised with its scheme.
pub(super) fn parse_etcd_url(text: &str) -> Result<String, String> {
    let text = text.trim();
    let (scheme, rest) = match text.split_once("://") {
        Some((scheme @ ("http" | "https"), rest)) => (scheme, rest),
        Some(_) => {
            return Err(format!(
                "\"{text}\" is not an etcd endpoint (use http:// or https://)"
            ));
        }
        None => ("http", text),
    };
    match rest.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0) => {
            Ok(format!("{scheme}://{rest}"))
        }
        _ => Err(format!(
            "\"{text}\" is not an etcd endpoint (http://HOST:PORT or https://HOST:PORT)"
        )),
    }
}

pub(super) fn parse_cluster_key(text: &str) -> Result<ClusterKey, String> {
    ClusterKey::parse(text).map_err(|e| e.to_string())
}

pub(super) fn parse_profile(text: &str) -> Result<ProfileName, String> {
    ProfileName::parse(text).map_err(|e| e.to_string())
}

/// Seconds a restart's new process has to serve: 1 to 3600.
pub(super) fn parse_handoff_timeout(text: &str) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(secs) if (1..=3600).contains(&secs) => Ok(secs),
        _ => Err(format!(
            "\"{text}\" is not a number of seconds from 1 to 3600"
        )),
    }
}
