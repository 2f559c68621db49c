//! How the gateway may reach etcd (docs/reference.md#cluster): one scheme for every
//! endpoint, the TLS files only with `https://`, and an etcd user's password, which
//! never comes from the command line (the process list shows it to every local user).

/// The systemd credential that carries the etcd user's password (`LoadCredential=`).
pub const PASSWORD_CREDENTIAL: &str = "gateway-cluster-password";
/// The environment variable that carries it otherwise.
pub const PASSWORD_VARIABLE: &str = "GATEWAY_CLUSTER_PASSWORD";

/// How the endpoints of `--cluster-etcd` are spoken to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EtcdScheme {
    /// `http://`: plain TCP.
    Http,
    /// `https://`: TLS, the server's certificate verified.
    Https,
}

impl EtcdScheme {
    /// The scheme of a normalised endpoint (`http://HOST:PORT`, `https://HOST:PORT`).
    pub fn of(url: &str) -> Option<Self> {
        if url.starts_with("https://") {
            Some(Self::Https)
        } else if url.starts_with("http://") {
            Some(Self::Http)
        } else {
            None
        }
    }
}

/// Checks the `--cluster-*` flags together, after each was parsed: a usage error (2)
/// when the endpoints mix `http://` and `https://` (a password or a client
/// certificate would then travel in clear to some members, and a cluster is one
/// service), or when TLS files are given for `http://` endpoints (they would be
/// silently unused).
pub fn check_endpoints(endpoints: &[String], tls_files_given: bool) -> Result<(), String> {
    let https = endpoints
        .iter()
        .filter(|url| EtcdScheme::of(url) == Some(EtcdScheme::Https))
        .count();
    if https != 0 && https != endpoints.len() {
        return Err(
            "--cluster-etcd mixes http:// and https:// endpoints: give every member the same scheme"
                .to_owned(),
        );
    }
    if tls_files_given && https == 0 {
        return Err(
            "--cluster-ca, --cluster-cert and --cluster-cert-key need https:// endpoints in --cluster-etcd"
                .to_owned(),
        );
    }
    Ok(())
}

/// The etcd user's password cannot be had: the start is refused (78) before any bind.
/// No variant carries the password itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterPasswordError {
    #[error(
        "--cluster-user {user} needs a password: set GATEWAY_CLUSTER_PASSWORD or the systemd credential gateway-cluster-password"
    )]
    Missing { user: String },
    #[error(
        "cannot read the etcd password from {path} (credential {PASSWORD_CREDENTIAL}): {reason}"
    )]
    Unreadable { path: String, reason: String },
    #[error("the etcd password file {path} (credential {PASSWORD_CREDENTIAL}) is empty")]
    Empty { path: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn one_scheme_for_every_endpoint() {
        assert!(check_endpoints(&urls(&["http://a:1", "http://b:1"]), false).is_ok());
        assert!(check_endpoints(&urls(&["https://a:1", "https://b:1"]), true).is_ok());
        let mixed = check_endpoints(&urls(&["https://a:1", "http://b:1"]), false).unwrap_err();
        assert!(mixed.contains("mixes http:// and https://"), "{mixed}");
    }

    #[test]
    fn tls_files_need_https_endpoints() {
        let refused = check_endpoints(&urls(&["http://a:1"]), true).unwrap_err();
        assert!(refused.contains("need https://"), "{refused}");
        assert!(check_endpoints(&urls(&["https://a:1"]), false).is_ok());
    }

    #[test]
    fn a_missing_password_says_where_to_put_it() {
        let error = ClusterPasswordError::Missing { user: "gw".into() };
        assert_eq!(
            error.to_string(),
            "--cluster-user gw needs a password: set GATEWAY_CLUSTER_PASSWORD or the systemd credential gateway-cluster-password"
        );
    }
}
