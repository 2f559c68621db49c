//! What a start may expose, decided before any bind: where the token comes from, TLS
//! from `--tls-cert`/`--tls-key`, the refusals of an exposed gateway (no token, or
//! plaintext off loopback), and how it is let into etcd (TLS files, password). Only
//! wiring: the rules are `gateway_domain::config`'s, the files are read by
//! `gateway_adapters`.

use gateway_adapters::TlsTermination;
use gateway_adapters::cluster::EtcdAccess;
use gateway_adapters::token_file::resolve_token;
use gateway_domain::config::{PLAINTEXT_WARNING, Transport, check_exposure, check_plaintext};
use gateway_domain::token_source::{COMMAND_LINE_TOKEN_WARNING, TokenOrigin};
use gateway_domain::{Endpoint, GatewayConfigError};

use crate::cli::RunArgs;
use crate::cluster_access;

/// The security of a start that may go on.
pub struct Exposure {
    /// The token `connect` must carry, and where it came from.
    pub token: Option<(TokenOrigin, String)>,
    /// The TLS server side, when the port speaks TLS.
    pub tls: Option<TlsTermination>,
    /// How clients reach the port, for the warning of `--allow-plaintext`.
    pub transport: Transport,
    /// TLS and the etcd user for the cluster lock, with `--cluster-etcd`: taken by
    /// the cluster's wiring.
    pub cluster_access: Option<EtcdAccess>,
}

impl Exposure {
    /// The endpoint a start binds, in the scheme it serves (`wss://` with TLS).
    pub fn endpoint(&self, args: &RunArgs) -> Endpoint {
        Endpoint::new(args.target.bind, args.target.port()).with_tls(self.tls.is_some())
    }

    /// The token alone, for the server.
    pub fn token(&self) -> Option<String> {
        self.token.as_ref().map(|(_, token)| token.clone())
    }

    /// The warnings of a start that goes on: a token on the command line, plaintext
    /// off loopback. Logged once, by the process that serves.
    pub fn warn(&self) {
        if matches!(self.token, Some((TokenOrigin::CommandLine, _))) {
            tracing::warn!("{COMMAND_LINE_TOKEN_WARNING}");
        }
        if self.transport == Transport::PlaintextBehindProxy {
            tracing::warn!("{PLAINTEXT_WARNING}");
        }
    }
}

/// Reads the token and the TLS files, and refuses (the error's headline, exit 78) a
/// start that would expose the gateway: off loopback without a token, then off
/// loopback without TLS (unless `--allow-plaintext`), then TLS files it cannot use,
/// then etcd's TLS files or password that cannot be had.
pub fn check(args: &RunArgs) -> Result<Exposure, GatewayConfigError> {
    let (command_line, environment) = if args.token_on_command_line {
        (args.token.as_deref(), None)
    } else {
        (None, args.token.as_deref())
    };
    let token = resolve_token(command_line, args.token_file.as_deref(), environment)?;
    let bind = args.target.bind;
    let port = args.target.port();
    check_exposure(bind, port, token.as_ref().map(|(_, t)| t.as_str()))?;
    let tls_files = args.tls_cert.as_deref().zip(args.tls_key.as_deref());
    let transport = check_plaintext(
        Endpoint::new(bind, port),
        tls_files.is_some(),
        args.allow_plaintext,
    )?;
    let tls = tls_files
        .map(|(cert, key)| TlsTermination::load(cert, key))
        .transpose()?;
    let cluster_access = cluster_access::load(&args.cluster)?;
    Ok(Exposure {
        token,
        tls,
        transport,
        cluster_access,
    })
}
