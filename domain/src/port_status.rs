//! What is on a port, for `gateway status` and `gateway stop`: a gateway, something
//! else, or nothing; and whether `stop` may signal it.

use serde::Serialize;

use crate::endpoint::Endpoint;
use crate::exit_code::ExitCode;
use crate::identity::HealthReport;
use crate::port_owner::PortOwners;
use crate::uptime::human_uptime;

/// The three states of docs/reference.md#operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortState {
    /// A gateway answered `/healthz`.
    Running(HealthReport),
    /// Nothing accepts connections on the port.
    Stopped,
    /// Something accepts connections but is not a gateway.
    Foreign,
}

/// One observation of a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortStatus {
    pub endpoint: Endpoint,
    pub state: PortState,
    pub owners: PortOwners,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusJson<'a> {
    state: &'static str,
    url: String,
    pid: Option<u32>,
    program: Option<&'a str>,
    version: Option<&'a str>,
    profile: Option<&'a str>,
    uptime_ms: Option<u64>,
    /// `active` or `standby` for a clustered gateway, `null` otherwise.
    role: Option<&'a str>,
}

impl PortStatus {
    /// Combines what the probe, a connection attempt and the OS said.
    pub fn observe(
        endpoint: Endpoint,
        health: Option<HealthReport>,
        accepting: bool,
        owners: PortOwners,
    ) -> Self {
        let state = match health {
            Some(report) if report.is_gateway() => PortState::Running(report),
            _ if accepting => PortState::Foreign,
            _ => PortState::Stopped,
        };
        Self {
            endpoint,
            state,
            owners,
        }
    }

    /// `status`: 0 running, 3 stopped, 4 foreign.
    pub fn exit_code(&self) -> ExitCode {
        match self.state {
            PortState::Running(_) => ExitCode::Clean,
            PortState::Stopped => ExitCode::NotRunning,
            PortState::Foreign => ExitCode::ForeignHolder,
        }
    }

    /// The pid to report: the gateway's own word, or the visible owner.
    fn pid(&self) -> Option<u32> {
        match &self.state {
            PortState::Running(report) => Some(report.pid),
            PortState::Foreign => self.owners.processes().first().map(|p| p.pid),
            PortState::Stopped => None,
        }
    }

    fn program(&self) -> Option<&str> {
        let pid = self.pid()?;
        self.owners
            .processes()
            .iter()
            .find(|p| p.pid == pid)
            .and_then(|p| p.program.as_deref())
    }

    /// The one-object `--json` output.
    pub fn to_json(&self) -> String {
        let report = match &self.state {
            PortState::Running(report) => Some(report),
            _ => None,
        };
        let json = StatusJson {
            state: match self.state {
                PortState::Running(_) => "running",
                PortState::Stopped => "stopped",
                PortState::Foreign => "foreign",
            },
            url: self.endpoint.to_string(),
            pid: self.pid(),
            program: self.program(),
            version: report.map(|r| r.version.as_str()),
            profile: report.map(|r| r.profile.as_str()),
            uptime_ms: report.map(|r| r.uptime_ms),
            role: report
                .and_then(|r| r.cluster.as_ref())
                .map(|c| c.role.as_str()),
        };
        serde_json::to_string(&json).unwrap_or_default()
    }

    /// The human summary.
    pub fn summary(&self) -> String {
        let url = self.endpoint;
        match &self.state {
            PortState::Running(r) => {
                let mut text = format!(
                    "gateway running on {url}\n  pid {}, version {}, profile \"{}\", up {}",
                    r.pid,
                    r.version,
                    r.profile,
                    human_uptime(r.uptime_ms)
                );
                if let Some(cluster) = &r.cluster {
                    text.push_str(&format!(
                        "\n  cluster key \"{}\": {}",
                        cluster.key, cluster.role
                    ));
                    if let Some(token) = cluster.fencing_token {
                        text.push_str(&format!(", fencing token {token}"));
                    }
                }
                text
            }
            PortState::Stopped => format!("no gateway running on {url}"),
            PortState::Foreign => format!(
                "{url} is held by something that is not a gateway: {}",
                self.owners.describe()
            ),
        }
    }
}

/// What `gateway stop` will do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopPlan {
    /// Nothing listens: exit 3.
    NothingRunning,
    /// The holder is not (provably) a gateway: touch nothing, exit 4.
    LeaveAlone { reason: String },
    /// SIGTERM this pid and wait for the port.
    Terminate { pid: u32 },
    /// The gateway is already stopping: wait for the port without signalling (a
    /// second SIGTERM would cut its graceful stop short).
    AwaitStop { pid: u32 },
}

/// Decides `stop`. A gateway's `/healthz` pid is signalled only if the OS agrees that
/// this pid owns the listening socket, whenever the OS shows the owner at all.
pub fn plan_stop(status: &PortStatus) -> StopPlan {
    match &status.state {
        PortState::Stopped => StopPlan::NothingRunning,
        PortState::Foreign => StopPlan::LeaveAlone {
            reason: format!(
                "{} is held by something that is not a gateway ({}); leaving it alone",
                status.endpoint,
                status.owners.describe()
            ),
        },
        PortState::Running(report) => match &status.owners {
            PortOwners::Visible(owners) if !owners.iter().any(|p| p.pid == report.pid) => {
                StopPlan::LeaveAlone {
                    reason: format!(
                        "{} answers as gateway pid {}, but the listening socket belongs to {}; leaving it alone",
                        status.endpoint,
                        report.pid,
                        status.owners.describe()
                    ),
                }
            }
            _ if report.is_draining() => StopPlan::AwaitStop { pid: report.pid },
            _ => StopPlan::Terminate { pid: report.pid },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::GatewayIdentity;
    use crate::port_owner::ProcessInfo;

    fn endpoint() -> Endpoint {
        Endpoint::new("127.0.0.1".parse().unwrap(), 5555)
    }

    fn report(pid: u32) -> HealthReport {
        HealthReport::live(&GatewayIdentity::fixture(pid, 5555), 61_000)
    }

    fn owner(pid: u32, program: &str) -> PortOwners {
        PortOwners::Visible(vec![ProcessInfo {
            pid,
            program: Some(program.into()),
        }])
    }

    #[test]
    fn running_gateway_is_0_and_stop_signals_its_pid() {
        let s = PortStatus::observe(endpoint(), Some(report(10)), true, owner(10, "gateway"));
        assert_eq!(s.exit_code(), ExitCode::Clean);
        assert_eq!(
            s.to_json(),
            r#"{"state":"running","url":"ws://127.0.0.1:5555","pid":10,"program":"gateway","version":"0.1.0","profile":"default","uptimeMs":61000,"role":null}"#
        );
        assert_eq!(plan_stop(&s), StopPlan::Terminate { pid: 10 });
    }

    fn clustered(pid: u32, role: &str, fencing_token: Option<u64>) -> HealthReport {
        HealthReport {
            cluster: Some(crate::identity::ClusterReport {
                key: "shared".into(),
                role: role.into(),
                fencing_token,
            }),
            ..report(pid)
        }
    }

    #[test]
    fn a_clustered_gateway_shows_its_role_in_json_and_summary() {
        let standby = clustered(10, "standby", None);
        let s = PortStatus::observe(endpoint(), Some(standby), true, owner(10, "gateway"));
        assert!(
            s.to_json()
                .ends_with(r#""uptimeMs":61000,"role":"standby"}"#)
        );
        assert_eq!(
            s.summary(),
            "gateway running on ws://127.0.0.1:5555\n  pid 10, version 0.1.0, profile \"default\", up 1m 1s\n  cluster key \"shared\": standby"
        );
        let active = clustered(10, "active", Some(7));
        let s = PortStatus::observe(endpoint(), Some(active), true, owner(10, "gateway"));
        assert!(s.to_json().ends_with(r#""role":"active"}"#));
        assert!(
            s.summary()
                .ends_with("\n  cluster key \"shared\": active, fencing token 7"),
            "{}",
            s.summary()
        );
    }

    #[test]
    fn nothing_listening_is_3() {
        let s = PortStatus::observe(endpoint(), None, false, PortOwners::None);
        assert_eq!(s.exit_code(), ExitCode::NotRunning);
        assert_eq!(
            s.to_json(),
            r#"{"state":"stopped","url":"ws://127.0.0.1:5555","pid":null,"program":null,"version":null,"profile":null,"uptimeMs":null,"role":null}"#
        );
        assert_eq!(plan_stop(&s), StopPlan::NothingRunning);
    }

    #[test]
    fn a_foreign_holder_is_4_and_left_alone() {
        let s = PortStatus::observe(endpoint(), None, true, owner(77, "nginx"));
        assert_eq!(s.exit_code(), ExitCode::ForeignHolder);
        assert!(s.to_json().contains(r#""pid":77,"program":"nginx""#));
        assert!(matches!(plan_stop(&s), StopPlan::LeaveAlone { .. }));
    }

    #[test]
    fn a_healthz_pid_that_does_not_own_the_socket_is_left_alone() {
        let s = PortStatus::observe(endpoint(), Some(report(10)), true, owner(11, "proxy"));
        let StopPlan::LeaveAlone { reason } = plan_stop(&s) else {
            panic!("would signal")
        };
        assert!(reason.contains("pid 11 (proxy)"), "{reason}");
    }

    #[test]
    fn a_stopping_gateway_is_awaited_not_signalled_again() {
        let mut draining = report(10);
        draining.ok = false;
        draining.status = crate::identity::DRAINING_STATUS.into();
        let s = PortStatus::observe(endpoint(), Some(draining), true, owner(10, "gateway"));
        assert_eq!(s.exit_code(), ExitCode::Clean);
        assert_eq!(plan_stop(&s), StopPlan::AwaitStop { pid: 10 });
    }

    #[test]
    fn when_the_os_hides_the_owner_the_gateway_word_is_taken() {
        let s = PortStatus::observe(endpoint(), Some(report(10)), true, PortOwners::Hidden);
        assert_eq!(plan_stop(&s), StopPlan::Terminate { pid: 10 });
    }
}
