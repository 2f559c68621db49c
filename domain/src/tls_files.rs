//! What can be wrong with the certificate and key files of `--tls-cert`/`--tls-key`:
//! each a refusal (exit 78) that names the file and the problem, before any bind.

use std::fmt;

/// Which of the two files a problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFileRole {
    /// `--tls-cert`: the certificate chain, leaf first.
    Certificate,
    /// `--tls-key`: the private key of the leaf certificate.
    Key,
    /// `--cluster-ca`: the CAs an `https://` etcd's certificate is verified against.
    ClusterCa,
    /// `--cluster-cert`: the client certificate presented to etcd, leaf first.
    ClusterCertificate,
    /// `--cluster-cert-key`: its private key (kept private like `--tls-key`).
    ClusterKey,
}

impl fmt::Display for TlsFileRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Certificate => "TLS certificate file",
            Self::Key => "TLS key file",
            Self::ClusterCa => "etcd CA file",
            Self::ClusterCertificate => "etcd client certificate file",
            Self::ClusterKey => "etcd client key file",
        })
    }
}

/// The TLS files cannot be served with. Displays as the text after
/// `GatewayConfigError: `, naming the file (and the flag it came from).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsFileError {
    #[error("cannot read the {role} {path}: {reason}")]
    Unreadable {
        role: TlsFileRole,
        path: String,
        /// The OS's words (`No such file or directory (os error 2)`).
        reason: String,
    },
    #[error("the {role} {path} is not PEM: {what}")]
    NotPem {
        role: TlsFileRole,
        path: String,
        /// What was expected and not found (`no CERTIFICATE block`).
        what: String,
    },
    #[error(
        "the TLS key file {path} is readable by group or others (mode {mode:04o}); chmod 600 it"
    )]
    KeyExposed { path: String, mode: u32 },
    #[error("the TLS key file {key} does not match the certificate in {cert}")]
    KeyMismatch { key: String, cert: String },
    #[error("the {role} {path} cannot be used: {reason}")]
    Unusable {
        role: TlsFileRole,
        path: String,
        /// The TLS library's words (an unsupported key type, a malformed certificate).
        reason: String,
    },
}

/// Permission bits of a key file that let anyone but its owner near it.
pub const KEY_MODE_SHARED_BITS: u32 = 0o077;

/// Whether a key file with these permission bits is private enough to serve with:
/// nobody but its owner may read (or write) it.
pub fn key_mode_is_private(mode: u32) -> bool {
    mode & KEY_MODE_SHARED_BITS == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GatewayConfigError;

    #[test]
    fn only_an_owner_only_key_is_private() {
        assert!(key_mode_is_private(0o600));
        assert!(key_mode_is_private(0o400));
        assert!(!key_mode_is_private(0o640));
        assert!(!key_mode_is_private(0o644));
        assert!(!key_mode_is_private(0o602));
    }

    #[test]
    fn each_refusal_names_the_file_and_the_problem() {
        let exposed: GatewayConfigError = TlsFileError::KeyExposed {
            path: "/etc/gateway/key.pem".into(),
            mode: 0o644,
        }
        .into();
        assert_eq!(
            exposed.headline(),
            "GatewayConfigError: the TLS key file /etc/gateway/key.pem is readable by group or others (mode 0644); chmod 600 it"
        );
        let missing: GatewayConfigError = TlsFileError::Unreadable {
            role: TlsFileRole::Certificate,
            path: "/nope.pem".into(),
            reason: "No such file or directory (os error 2)".into(),
        }
        .into();
        assert_eq!(
            missing.headline(),
            "GatewayConfigError: cannot read the TLS certificate file /nope.pem: No such file or directory (os error 2)"
        );
    }
}
