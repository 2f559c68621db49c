//! The cluster lock's wiring (docs/reference.md#cluster): with `--cluster-etcd`, an
//! etcd client and a [`LockMember`] that takes the lock (or waits for it as a
//! standby) after the port and the profile; without it, [`SingleHost`]. What the
//! member does is `gateway_core::membership`'s business.

use std::sync::Arc;
use std::time::Duration;

use gateway_adapters::cluster::{EtcdAccess, this_host};
use gateway_adapters::{BootClock, ClusterGate, EtcdClusterLock};
use gateway_core::{ClusterSettings, LockMember, Membership, SingleHost};
use gateway_domain::cluster::{ClusterKey, ClusterLockError, HolderRecord};
use gateway_domain::handoff::InheritedLease;
use gateway_domain::profile::ProfileName;
use gateway_domain::{Endpoint, ExitCode};

use crate::cli::ClusterArgs;

/// A gateway's place in a cluster: the membership, and the gate through which the
/// server reads its role (`None` on a single host).
pub struct Cluster {
    pub membership: Arc<dyn Membership>,
    pub gate: Option<Arc<ClusterGate>>,
}

/// What `--cluster-*` asked for, when `--cluster-etcd` was given; the key defaults to
/// the profile.
fn settings(args: &ClusterArgs, profile: &ProfileName) -> Option<ClusterSettings> {
    if args.cluster_etcd.is_empty() {
        return None;
    }
    let key = args.cluster_key.clone().unwrap_or_else(|| {
        ClusterKey::parse(profile.as_str())
            .unwrap_or_else(|_| unreachable!("profile names are valid keys"))
    });
    Some(ClusterSettings {
        key,
        ttl: Duration::from_secs(args.cluster_ttl),
        standby: args.standby,
    })
}

/// Joins the cluster named by `args`, if any: takes the lock, or (with `--standby`)
/// prepares to wait for it. A restart's successor keeps the lease its predecessor
/// passed (`inherited`), so the fencing token stays. `access` is how etcd lets the
/// gateway in (TLS, user), read before the bind. A refusal is printed on stderr and
/// its exit code returned; the caller releases the port and the profile.
pub async fn join(
    args: &ClusterArgs,
    profile: &ProfileName,
    endpoint: Endpoint,
    inherited: Option<InheritedLease>,
    access: Option<EtcdAccess>,
) -> Result<Cluster, ExitCode> {
    let Some(settings) = settings(args, profile) else {
        return Ok(Cluster {
            membership: Arc::new(SingleHost),
            gate: None,
        });
    };
    let holder = HolderRecord {
        url: endpoint.to_string(),
        pid: std::process::id(),
        hostname: this_host(),
    };
    let access = access.unwrap_or_default();
    if access.user.is_some() && access.tls.is_none() {
        tracing::warn!("{PASSWORD_IN_CLEAR_WARNING}");
    }
    let lock = EtcdClusterLock::connect(&args.cluster_etcd, access)
        .await
        .map_err(|fault| refuse(&ClusterLockError::from(fault)))?;
    let clock = Arc::new(BootClock);
    let gate = Arc::new(ClusterGate::new(settings.key.to_string(), clock.clone()));
    let standby = settings.standby;
    let member = LockMember::new(settings, holder, Arc::new(lock), clock, gate.clone());
    if let Some(lease) = inherited {
        member.take_over(lease).await.map_err(|e| refuse(&e))?;
    } else if standby {
        member.stand_by().await.map_err(|e| refuse(&e))?;
    } else {
        member.acquire_now().await.map_err(|e| refuse(&e))?;
    }
    Ok(Cluster {
        membership: Arc::new(Arc::new(member)),
        gate: Some(gate),
    })
}

/// The warning of `--cluster-user` with http:// endpoints.
const PASSWORD_IN_CLEAR_WARNING: &str = "--cluster-user with http:// etcd endpoints: the password and its token travel in clear \
     (use https:// endpoints)";

/// Prints a refusal's line and returns its exit code.
fn refuse(error: &ClusterLockError) -> ExitCode {
    eprintln!("{}", error.headline());
    error.exit_code()
}
