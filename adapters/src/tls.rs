//! TLS on the gateway's one port: the server's side, loaded from the PEM files of
//! `--tls-cert`/`--tls-key` (each problem a domain refusal naming the file), and the
//! command line's side, which reads a gateway's identity without verifying it.
//!
//! Only rustls' `ring` provider is used: a fresh build needs no cmake or nasm.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use gateway_domain::tls_files::{TlsFileError, TlsFileRole, key_mode_is_private};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, ServerConfig, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

mod first_bytes;
pub use first_bytes::FirstBytes;

/// The one application protocol spoken on the port (WebSocket rides on its upgrade).
pub(crate) const ALPN_HTTP_1_1: &[u8] = b"http/1.1";
/// A certificate chain or key file larger than this is not one.
const MAX_PEM_FILE: u64 = 1024 * 1024;
/// TLS 1.2 and 1.3 only: rustls speaks nothing older.
pub(crate) static VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The gateway's TLS server side: every accepted connection is handshaken with it.
/// Cheap to clone (one shared configuration).
#[derive(Clone)]
pub struct TlsTermination {
    /// Certificate chain, key, versions and ALPN, as read at start.
    acceptor: TlsAcceptor,
}

impl fmt::Debug for TlsTermination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsTermination")
    }
}

impl TlsTermination {
    /// Reads and checks the certificate chain (leaf first) and its private key.
    /// MUST refuse a key file readable by group or others, a file missing or not
    /// PEM, and a key that is not the certificate's; each refusal names the file.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsFileError> {
        let chain = read_certificates(TlsFileRole::Certificate, cert)?;
        let private_key = read_key(TlsFileRole::Key, key)?;
        Self::with_identity(chain, private_key).map_err(|error| match error {
            rustls::Error::InconsistentKeys(_) => TlsFileError::KeyMismatch {
                key: key.display().to_string(),
                cert: cert.display().to_string(),
            },
            rustls::Error::InvalidCertificate(_) => {
                unusable(TlsFileRole::Certificate, cert, &error)
            }
            other => unusable(TlsFileRole::Key, key, &other),
        })
    }

    /// The same from PEM text already in memory (a test's or a fuzz target's own
    /// certificate): the chain's `CERTIFICATE` blocks, leaf first, and its key.
    pub fn from_pem(chain: &[u8], key: &[u8]) -> Result<Self, rustls::Error> {
        let certificates = CertificateDer::pem_slice_iter(chain)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| rustls::Error::General(error.to_string()))?;
        let key = PrivateKeyDer::from_pem_slice(key)
            .map_err(|error| rustls::Error::General(error.to_string()))?;
        Self::with_identity(certificates, key)
    }

    /// TLS 1.2 and 1.3 with `ring`, no client certificates, ALPN `http/1.1`.
    fn with_identity(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, rustls::Error> {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(VERSIONS)?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// The server side of the handshake on an accepted connection (the caller bounds
    /// it in time).
    pub(crate) fn accept<S>(&self, stream: S) -> tokio_rustls::Accept<S>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        self.acceptor.accept(stream)
    }
}

/// The gateway's TLS side with a self-signed certificate for `localhost`, made once
/// (for tests).
#[cfg(test)]
pub(crate) fn self_signed() -> &'static TlsTermination {
    static TERMINATION: OnceLock<TlsTermination> = OnceLock::new();
    TERMINATION.get_or_init(|| {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .expect("a certificate");
        TlsTermination::from_pem(
            made.cert.pem().as_bytes(),
            made.key_pair.serialize_pem().as_bytes(),
        )
        .expect("a usable certificate")
    })
}

/// rustls 0.23.48 deprecates the `ring` provider for lacking post-quantum key
/// exchange, to steer towards aws-lc-rs; that one needs cmake and nasm to build,
/// which the contract's build (docs/reference.md#building) rules out. X25519 and the
/// NIST curves stay, X25519 first: the same release lists P-384 first, and a client
/// offering it first (the command line's, a bench's) made each handshake about four
/// times as costly (268 against 1 040 new connections a second, docs/performance.md).
#[allow(deprecated)]
pub(crate) fn provider() -> Arc<CryptoProvider> {
    use rustls::crypto::ring::kx_group::{SECP256R1, SECP384R1, X25519};
    Arc::new(CryptoProvider {
        kx_groups: vec![X25519, SECP256R1, SECP384R1],
        ..rustls::crypto::ring::default_provider()
    })
}

fn unusable(role: TlsFileRole, path: &Path, error: &rustls::Error) -> TlsFileError {
    TlsFileError::Unusable {
        role,
        path: path.display().to_string(),
        reason: error.to_string(),
    }
}

/// The file's bytes, and its permission bits as the opened file has them (no window
/// between the check and the read).
fn read_file(role: TlsFileRole, path: &Path) -> Result<(Vec<u8>, u32), TlsFileError> {
    let unreadable = |error: std::io::Error| TlsFileError::Unreadable {
        role,
        path: path.display().to_string(),
        reason: error.to_string(),
    };
    let file = File::open(path).map_err(unreadable)?;
    let mode = file.metadata().map_err(unreadable)?.permissions().mode() & 0o7777;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_FILE)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    Ok((bytes, mode))
}

fn not_pem(role: TlsFileRole, path: &Path, what: impl fmt::Display) -> TlsFileError {
    TlsFileError::NotPem {
        role,
        path: path.display().to_string(),
        what: what.to_string(),
    }
}

/// Every `CERTIFICATE` block of the file, in order: the leaf, then its chain (or the
/// CAs of a CA file).
pub(crate) fn read_certificates(
    role: TlsFileRole,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsFileError> {
    let (bytes, _) = read_file(role, path)?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| not_pem(role, path, error))?;
    if chain.is_empty() {
        return Err(not_pem(role, path, "no CERTIFICATE block"));
    }
    Ok(chain)
}

/// The file's private key (PKCS#8, PKCS#1 RSA or SEC1 EC), once its mode is checked.
pub(crate) fn read_key(
    role: TlsFileRole,
    path: &Path,
) -> Result<PrivateKeyDer<'static>, TlsFileError> {
    let (bytes, mode) = read_file(role, path)?;
    if !key_mode_is_private(mode) {
        return Err(TlsFileError::KeyExposed {
            path: path.display().to_string(),
            mode,
        });
    }
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|error| match error {
        pem::Error::NoItemsFound => not_pem(role, path, "no PRIVATE KEY block"),
        other => not_pem(role, path, other),
    })
}

/// The command line's TLS client: `status`, `stop`, `restart` and a refused start's
/// probe send no secret and only read who the gateway is, so they do not verify its
/// certificate (a self-signed or private-CA gateway is found like any other).
pub(crate) async fn connect_unverified(
    stream: TcpStream,
    ip: IpAddr,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let provider = provider();
        let verifier = Arc::new(ReadsIdentityOnly(
            provider.signature_verification_algorithms,
        ));
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(VERSIONS)
            .expect("the ring provider supports TLS 1.2 and 1.3")
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
        Arc::new(config)
    });
    TlsConnector::from(Arc::clone(config))
        .connect(ServerName::IpAddress(ip.into()), stream)
        .await
}

/// Accepts any certificate, but still checks the handshake's signatures (so the
/// connection is a sound TLS session, only with an unauthenticated peer).
#[derive(Debug)]
struct ReadsIdentityOnly(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for ReadsIdentityOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x25519_is_offered_and_preferred_first() {
        let names: Vec<_> = provider().kx_groups.iter().map(|g| g.name()).collect();
        assert_eq!(
            names,
            [
                rustls::NamedGroup::X25519,
                rustls::NamedGroup::secp256r1,
                rustls::NamedGroup::secp384r1
            ]
        );
    }
}
