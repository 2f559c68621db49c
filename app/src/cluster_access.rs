//! How the gateway is let into etcd, read before any bind as the token is: the TLS
//! files of `--cluster-ca`, `--cluster-cert` and `--cluster-cert-key` (for https://
//! endpoints), and the password of `--cluster-user`. A file or password that cannot
//! be had refuses the start (78). Only wiring: `gateway_adapters` reads the files.

use gateway_adapters::cluster::{EtcdAccess, EtcdTls, EtcdUser};
use gateway_adapters::token_file::resolve_cluster_password;
use gateway_domain::GatewayConfigError;
use gateway_domain::cluster::access::EtcdScheme;

use crate::cli::ClusterArgs;

/// The TLS settings and etcd user of `args`; `None` without `--cluster-etcd`.
pub fn load(args: &ClusterArgs) -> Result<Option<EtcdAccess>, GatewayConfigError> {
    if args.cluster_etcd.is_empty() {
        return Ok(None);
    }
    let https = args
        .cluster_etcd
        .iter()
        .any(|url| EtcdScheme::of(url) == Some(EtcdScheme::Https));
    let tls = if https {
        let client = args
            .cluster_cert
            .as_deref()
            .zip(args.cluster_cert_key.as_deref());
        Some(EtcdTls::load(args.cluster_ca.as_deref(), client)?)
    } else {
        None
    };
    let user = match &args.cluster_user {
        Some(name) => Some(EtcdUser::new(name.clone(), resolve_cluster_password(name)?)),
        None => None,
    };
    Ok(Some(EtcdAccess { tls, user }))
}
