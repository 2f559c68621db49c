//! The errors a start can end in before the gateway serves. Their `Display` texts are
//! docs/reference.md#refusals verbatim; `headline` adds the type name users see on stderr.

use std::io;

use crate::endpoint::Endpoint;

/// Why the port (the lock) could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum GatewayLockError {
    /// The address is held by another socket: a gateway or anything else.
    #[error("another gateway instance is already listening on {endpoint}")]
    AlreadyListening { endpoint: Endpoint },

    /// The bind failed for any other reason; the OS error is kept for the user.
    #[error("failed to bind gateway socket on {endpoint}: {source}")]
    BindFailed {
        endpoint: Endpoint,
        #[source]
        source: io::Error,
    },

    /// The profile's lock file is held by a gateway serving on another port.
    #[error(
        "profile \"{profile}\" is already in use by the gateway on {holder_url} (pid {})",
        PidOrUnknown(.holder_pid)
    )]
    ProfileInUse {
        profile: String,
        holder_url: String,
        /// The holder's pid, when its lock file could be read.
        holder_pid: Option<u32>,
        /// The holder's port, when its lock file says, for the hint.
        holder_port: Option<u16>,
    },

    /// The profile's state directory or lock file cannot be used at all.
    #[error("cannot lock profile \"{profile}\" at {path}: {source}")]
    ProfileUnavailable {
        profile: String,
        path: String,
        #[source]
        source: io::Error,
    },
}

/// A pid as the profile refusal prints it: `unknown` when the holder's lock file
/// could not be read.
struct PidOrUnknown<'a>(&'a Option<u32>);

impl std::fmt::Display for PidOrUnknown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self.0 {
            Some(pid) => write!(f, "{pid}"),
            None => f.write_str("unknown"),
        }
    }
}

impl GatewayLockError {
    /// The first line printed on stderr.
    pub fn headline(&self) -> String {
        format!("GatewayLockError: {self}")
    }

    /// The endpoint whose bind failed, when the failure is about a bind.
    pub fn endpoint(&self) -> Option<Endpoint> {
        match self {
            Self::AlreadyListening { endpoint } | Self::BindFailed { endpoint, .. } => {
                Some(*endpoint)
            }
            Self::ProfileInUse { .. } | Self::ProfileUnavailable { .. } => None,
        }
    }
}

/// A configuration the gateway refuses to run with.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum GatewayConfigError {
    #[error("refusing to bind gateway to {endpoint} without auth (set --token or GATEWAY_TOKEN)")]
    UnauthenticatedNonLoopback { endpoint: Endpoint },
    #[error(
        "refusing to send tokens in clear text on {endpoint} (set --tls-cert and --tls-key, or --allow-plaintext behind a TLS proxy)"
    )]
    PlaintextNonLoopback { endpoint: Endpoint },
    /// `--tls-cert`/`--tls-key` name files the gateway cannot serve with.
    #[error(transparent)]
    TlsFile(#[from] crate::tls_files::TlsFileError),
    /// The token's file (`--token-file`, the `gateway-token` credential) cannot give one.
    #[error(transparent)]
    TokenFile(#[from] crate::token_source::TokenFileError),
    /// `--cluster-user` without a password that can be read.
    #[error(transparent)]
    ClusterPassword(#[from] crate::cluster::access::ClusterPasswordError),
}

impl GatewayConfigError {
    /// The first line printed on stderr.
    pub fn headline(&self) -> String {
        format!("GatewayConfigError: {self}")
    }
}
