//! The `--cluster-*` flags (docs/reference.md#cluster): which etcd, which key, and how
//! the gateway is let in (TLS files, an etcd user). The password has no flag: it
//! comes from `GATEWAY_CLUSTER_PASSWORD` or the credential `gateway-cluster-password`,
//! never from the command line, which every local user can read.

use std::path::PathBuf;

use clap::Args;
use gateway_domain::cluster::ClusterKey;
use gateway_domain::cluster::access::check_endpoints;

use super::parse::{naming_its_variable, parse_cluster_key, parse_etcd_url};

#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// etcd endpoints of the cluster lock (http://HOST:PORT or https://HOST:PORT,
    /// comma-separated, one scheme for all): only one gateway per --cluster-key is
    /// active across hosts.
    #[arg(long, env = "GATEWAY_CLUSTER_ETCD", value_name = "URL[,URL]...",
          value_delimiter = ',', value_parser = naming_its_variable(parse_etcd_url))]
    pub cluster_etcd: Vec<String>,

    /// The name the gateways compete for [default: the profile name].
    #[arg(long, env = "GATEWAY_CLUSTER_KEY", requires = "cluster_etcd",
          value_parser = naming_its_variable(parse_cluster_key))]
    pub cluster_key: Option<ClusterKey>,

    /// Seconds the cluster lock's lease lives without a keep-alive.
    #[arg(long, value_name = "SECS", default_value_t = 10, requires = "cluster_etcd",
          value_parser = clap::value_parser!(u64).range(2..=3600))]
    pub cluster_ttl: u64,

    /// When another gateway is active, wait as a standby instead of exiting 78.
    #[arg(long, requires = "cluster_etcd")]
    pub standby: bool,

    /// PEM CA certificate(s) that https:// etcd endpoints are verified against
    /// [default: the system's CA store].
    #[arg(
        long,
        env = "GATEWAY_CLUSTER_CA",
        value_name = "FILE",
        requires = "cluster_etcd"
    )]
    pub cluster_ca: Option<PathBuf>,

    /// PEM client certificate (leaf first) presented to https:// etcd endpoints.
    #[arg(
        long,
        env = "GATEWAY_CLUSTER_CERT",
        value_name = "FILE",
        requires_all = ["cluster_etcd", "cluster_cert_key"]
    )]
    pub cluster_cert: Option<PathBuf>,

    /// PEM private key of --cluster-cert; refused when readable by group or others.
    #[arg(
        long,
        env = "GATEWAY_CLUSTER_CERT_KEY",
        value_name = "FILE",
        requires = "cluster_cert"
    )]
    pub cluster_cert_key: Option<PathBuf>,

    /// etcd user to authenticate as; its password comes from GATEWAY_CLUSTER_PASSWORD
    /// or the systemd credential gateway-cluster-password, never from a flag.
    #[arg(
        long,
        env = "GATEWAY_CLUSTER_USER",
        value_name = "NAME",
        requires = "cluster_etcd"
    )]
    pub cluster_user: Option<String>,
}

impl ClusterArgs {
    /// The checks across flags, after each was parsed (a usage error, exit 2): one
    /// scheme for every endpoint, TLS files only with https://.
    pub fn check(&self) -> Result<(), String> {
        let tls_files = self.cluster_ca.is_some() || self.cluster_cert.is_some();
        check_endpoints(&self.cluster_etcd, tls_files)
    }
}
