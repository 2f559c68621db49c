//! Whose gateway an operation found (docs/reference.md#operations): `status`, `stop` and
//! `restart` find the gateway by its port alone, but when the user named a profile
//! (`--profile`, `--dev`, `GATEWAY_PROFILE`), a gateway of another profile on that
//! port is not the one asked for. It is reported as "not running" (3), naming the
//! profile it has, and never signalled or restarted.

use crate::port_status::{PortState, PortStatus};

/// A gateway answered on the port, but for another profile than the one named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "no gateway of profile \"{wanted}\" running on {url}: the gateway there (pid {pid}) has profile \"{found}\""
)]
pub struct OtherProfile {
    pub wanted: String,
    pub url: String,
    pub pid: u32,
    pub found: String,
}

/// Checks that the gateway found on the port (if any) has the profile the user
/// named; `named` is `None` when no profile was named (any gateway on the port is
/// the one meant).
pub fn check_profile(status: &PortStatus, named: Option<&str>) -> Result<(), OtherProfile> {
    let (Some(wanted), PortState::Running(report)) = (named, &status.state) else {
        return Ok(());
    };
    if report.profile == wanted {
        return Ok(());
    }
    Err(OtherProfile {
        wanted: wanted.to_owned(),
        url: status.endpoint.to_string(),
        pid: report.pid,
        found: report.profile.clone(),
    })
}

/// The status to report once a gateway of another profile was found: as if nothing
/// ran there for the profile named.
pub fn as_stopped(status: &PortStatus) -> PortStatus {
    PortStatus {
        state: PortState::Stopped,
        ..status.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::Endpoint;
    use crate::identity::HealthReport;
    use crate::port_owner::PortOwners;
    use std::net::{IpAddr, Ipv4Addr};

    fn running(profile: &str) -> PortStatus {
        PortStatus {
            endpoint: Endpoint::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 4000),
            state: PortState::Running(HealthReport {
                ok: true,
                status: "live".into(),
                service: "gateway".into(),
                pid: 42,
                port: 4000,
                profile: profile.into(),
                version: "0.1.0".into(),
                uptime_ms: 1,
                cluster: None,
            }),
            owners: PortOwners::None,
        }
    }

    #[test]
    fn a_gateway_of_another_profile_is_not_the_one_named_and_counts_as_not_running() {
        let found = running("default");
        let refusal = check_profile(&found, Some("nosuch")).unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "no gateway of profile \"nosuch\" running on ws://127.0.0.1:4000: the gateway there (pid 42) has profile \"default\""
        );
        assert_eq!(as_stopped(&found).exit_code().code(), 3);
    }

    #[test]
    fn the_named_profile_or_no_profile_named_finds_the_gateway() {
        assert_eq!(check_profile(&running("work"), Some("work")), Ok(()));
        assert_eq!(check_profile(&running("work"), None), Ok(()));
        let mut nothing = running("work");
        nothing.state = PortState::Stopped;
        assert_eq!(check_profile(&nothing, Some("other")), Ok(()));
    }
}
