//! Who a running gateway is, as it tells the world on `/healthz` and in `hello-ok`.

use serde::{Deserialize, Serialize};

use crate::cluster::ClusterView;

/// The fixed facts of one gateway process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayIdentity {
    pub pid: u32,
    pub port: u16,
    pub profile: String,
    pub version: String,
}

/// The `/healthz` body (and the `health` method's payload). Field order is the
/// reference's (docs/reference.md#http).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthReport {
    pub ok: bool,
    pub status: String,
    pub service: String,
    pub pid: u32,
    pub port: u16,
    pub profile: String,
    pub version: String,
    pub uptime_ms: u64,
    /// Only from a clustered gateway: its key, role and token, as `status` shows them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterReport>,
}

/// The `cluster` object of a `/healthz` body, as read back by `status` (the owned
/// twin of [`ClusterView`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterReport {
    pub key: String,
    /// `active` or `standby`.
    pub role: String,
    pub fencing_token: Option<u64>,
}

/// The `/healthz` body as written by the gateway itself: the same fields as
/// [`HealthReport`], borrowed, so answering costs no allocation but the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthView<'a> {
    pub ok: bool,
    pub status: &'static str,
    pub service: &'static str,
    pub pid: u32,
    pub port: u16,
    pub profile: &'a str,
    pub version: &'a str,
    pub uptime_ms: u64,
    /// Only with `--cluster-etcd`: the key, the role and the fencing token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterView<'a>>,
}

/// The `status` a stopping gateway reports on `/healthz` (with `ok: false`, 503).
pub const DRAINING_STATUS: &str = "draining";
/// The `status` of a clustered gateway that waits for the cluster lock (200).
pub const STANDBY_STATUS: &str = "standby";

impl GatewayIdentity {
    /// This gateway's health once its stop has begun: still itself, no longer live.
    pub fn draining(&self, uptime_ms: u64) -> HealthView<'_> {
        HealthView {
            ok: false,
            status: DRAINING_STATUS,
            ..self.health(uptime_ms)
        }
    }

    /// This gateway's health, alive for `uptime_ms`.
    pub fn health(&self, uptime_ms: u64) -> HealthView<'_> {
        HealthView {
            ok: true,
            status: "live",
            service: SERVICE_NAME,
            pid: self.pid,
            port: self.port,
            profile: &self.profile,
            version: &self.version,
            uptime_ms,
            cluster: None,
        }
    }

    /// This gateway's health as a member of a cluster: `standby` while it waits.
    pub fn clustered<'a>(&'a self, uptime_ms: u64, cluster: ClusterView<'a>) -> HealthView<'a> {
        let standby = cluster.role == crate::cluster::Role::Standby.as_str();
        HealthView {
            status: if standby { STANDBY_STATUS } else { "live" },
            cluster: Some(cluster),
            ..self.health(uptime_ms)
        }
    }
}

/// The `/readyz` body while serving: `ready` first, then the health facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReadyReport<'a> {
    pub ready: bool,
    #[serde(flatten)]
    pub health: HealthView<'a>,
}

/// The `service` value by which a gateway recognises another gateway.
pub const SERVICE_NAME: &str = "gateway";

impl HealthReport {
    /// The report of a gateway that is alive, `uptime_ms` after it started.
    pub fn live(identity: &GatewayIdentity, uptime_ms: u64) -> Self {
        Self {
            ok: true,
            status: "live".to_owned(),
            service: SERVICE_NAME.to_owned(),
            pid: identity.pid,
            port: identity.port,
            profile: identity.profile.clone(),
            version: identity.version.clone(),
            uptime_ms,
            cluster: None,
        }
    }

    /// Whether a body read off some port is a gateway's: the only thing the probe
    /// needs to decide between "another gateway" and "something else".
    pub fn is_gateway(&self) -> bool {
        self.service == SERVICE_NAME
    }

    /// Whether that gateway has begun its stop: its port is about to be free.
    pub fn is_draining(&self) -> bool {
        self.status == DRAINING_STATUS
    }
}

/// The one test gateway: profile `default`, version `0.1.0`.
#[cfg(test)]
impl GatewayIdentity {
    pub(crate) fn fixture(pid: u32, port: u16) -> Self {
        Self {
            pid,
            port,
            profile: "default".into(),
            version: "0.1.0".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_borrowed_view_writes_the_same_body_as_the_report() {
        let identity = GatewayIdentity {
            profile: "p\"q".into(),
            ..GatewayIdentity::fixture(1, 2)
        };
        assert_eq!(
            serde_json::to_string(&identity.health(3)).unwrap(),
            serde_json::to_string(&HealthReport::live(&identity, 3)).unwrap()
        );
    }

    #[test]
    fn healthz_body_has_the_documented_shape_and_order() {
        let identity = GatewayIdentity::fixture(42, 5000);
        let body = serde_json::to_string(&HealthReport::live(&identity, 7)).unwrap();
        assert_eq!(
            body,
            r#"{"ok":true,"status":"live","service":"gateway","pid":42,"port":5000,"profile":"default","version":"0.1.0","uptimeMs":7}"#
        );
    }

    #[test]
    fn a_clustered_standby_says_so_and_names_its_key() {
        use crate::cluster::{ClusterView, Role};
        let identity = GatewayIdentity::fixture(42, 5000);
        let body = serde_json::to_string(
            &identity.clustered(7, ClusterView::new("k", Role::Standby, None)),
        )
        .unwrap();
        assert_eq!(
            body,
            r#"{"ok":true,"status":"standby","service":"gateway","pid":42,"port":5000,"profile":"default","version":"0.1.0","uptimeMs":7,"cluster":{"key":"k","role":"standby","fencingToken":null}}"#
        );
        let active = identity.clustered(7, ClusterView::new("k", Role::Active, Some(9)));
        assert_eq!(active.status, "live");
    }
}
