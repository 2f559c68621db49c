//! TLS to `https://` etcd endpoints: the server's certificate verified against
//! `--cluster-ca` (or the system's roots) for the endpoint's host, and the client
//! certificate of `--cluster-cert`/`--cluster-cert-key` presented when given.
//!
//! The system roots are the host's own store, read by `rustls-native-certs`
//! (`/etc/ssl/certs`, or `SSL_CERT_FILE`/`SSL_CERT_DIR`): a private CA added with
//! `update-ca-certificates` is trusted, and no CA bundle compiled into the binary
//! goes stale between releases.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use gateway_domain::tls_files::{TlsFileError, TlsFileRole};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::tls::{VERSIONS, provider, read_certificates, read_key};

/// How the gateway speaks TLS to etcd. Cheap to clone (one shared configuration).
#[derive(Clone)]
pub struct EtcdTls {
    /// Roots, versions and the client certificate, as read at start.
    connector: TlsConnector,
}

impl fmt::Debug for EtcdTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EtcdTls")
    }
}

impl EtcdTls {
    /// Reads the CA file (else the system's roots) and the client certificate and
    /// key. MUST refuse, naming the file, a file missing or not PEM, a client key
    /// readable by group or others, and a key that is not the certificate's.
    pub fn load(ca: Option<&Path>, client: Option<(&Path, &Path)>) -> Result<Self, TlsFileError> {
        let roots = match ca {
            Some(path) => roots_in(path)?,
            None => system_roots(),
        };
        let builder = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(VERSIONS)
            .expect("the ring provider supports TLS 1.2 and 1.3")
            .with_root_certificates(roots);
        let config = match client {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = read_certificates(TlsFileRole::ClusterCertificate, cert)?;
                let private_key = read_key(TlsFileRole::ClusterKey, key)?;
                builder
                    .with_client_auth_cert(chain, private_key)
                    .map_err(|error| match error {
                        rustls::Error::InconsistentKeys(_) => TlsFileError::KeyMismatch {
                            key: key.display().to_string(),
                            cert: cert.display().to_string(),
                        },
                        other => TlsFileError::Unusable {
                            role: TlsFileRole::ClusterCertificate,
                            path: cert.display().to_string(),
                            reason: other.to_string(),
                        },
                    })?
            }
        };
        Ok(Self {
            connector: TlsConnector::from(Arc::new(config)),
        })
    }

    /// TLS with the system's roots and no client certificate.
    pub fn with_system_roots() -> Self {
        Self::load(None, None).unwrap_or_else(|_| unreachable!("no file to read"))
    }

    /// The client side of the handshake on `stream`, for `host` (a name or an IP
    /// address, which the certificate must name). A refusal is an `io::Error`
    /// wrapping the `rustls::Error`.
    pub(super) async fn connect(
        &self,
        host: &str,
        stream: TcpStream,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let name = ServerName::try_from(host.to_owned()).map_err(|error| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, error.to_string())
        })?;
        self.connector.connect(name, stream).await
    }
}

/// Every certificate of a CA file, as roots.
fn roots_in(path: &Path) -> Result<RootCertStore, TlsFileError> {
    let mut roots = RootCertStore::empty();
    for certificate in read_certificates(TlsFileRole::ClusterCa, path)? {
        roots
            .add(certificate)
            .map_err(|error| TlsFileError::Unusable {
                role: TlsFileRole::ClusterCa,
                path: path.display().to_string(),
                reason: error.to_string(),
            })?;
    }
    Ok(roots)
}

/// The host's CA store; what cannot be read is skipped (and logged at debug), so an
/// empty store makes every handshake fail with an unknown issuer, a refusal that
/// names it.
fn system_roots() -> RootCertStore {
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::debug!(%error, "a system CA certificate could not be read");
    }
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    tracing::debug!(added, ignored, "system CA certificates for etcd");
    roots
}
