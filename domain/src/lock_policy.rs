//! The lock policy: which exit code each refused start earns, and what the user is
//! told to do about it.

use crate::exit_code::ExitCode;
use crate::holder::Holder;
use crate::lock_error::GatewayLockError;
use crate::port_owner::PortOwners;
use crate::uptime::human_uptime;

/// A start that did not get the lock, with everything needed to report it.
#[derive(Debug)]
pub struct Refusal {
    pub error: GatewayLockError,
    /// What answered on the taken port, when it was asked.
    pub holder: Option<Holder>,
    /// Who the OS says owns the taken port, when it was looked up.
    pub owners: Option<PortOwners>,
}

impl Refusal {
    /// The exit code: a confirmed gateway (or profile holder) is final (78), an
    /// unknown holder may go away (75), any other bind failure is an OS error (71).
    pub fn exit_code(&self) -> ExitCode {
        match (&self.error, &self.holder) {
            // A gateway that is stopping will free the port in a moment: temporary.
            (GatewayLockError::AlreadyListening { .. }, Some(Holder::Gateway(h)))
                if h.is_draining() =>
            {
                ExitCode::PortHeld
            }
            (GatewayLockError::AlreadyListening { .. }, Some(Holder::Gateway(_))) => {
                ExitCode::Refused
            }
            (GatewayLockError::AlreadyListening { .. }, _) => ExitCode::PortHeld,
            (GatewayLockError::BindFailed { .. }, _) => ExitCode::BindFailed,
            (GatewayLockError::ProfileInUse { .. }, _) => ExitCode::Refused,
            (GatewayLockError::ProfileUnavailable { .. }, _) => ExitCode::RuntimeFailure,
        }
    }

    /// Every line for stderr: the first line of docs/reference.md#refusals, then indented hints.
    pub fn report_lines(&self) -> Vec<String> {
        let mut lines = vec![self.error.headline()];
        if let GatewayLockError::AlreadyListening { endpoint } = &self.error {
            let port = endpoint.port();
            match &self.holder {
                Some(Holder::Gateway(h)) if h.is_draining() => {
                    lines.push(format!(
                        "  held by gateway pid {} (profile \"{}\"), which is stopping",
                        h.pid, h.profile
                    ));
                    lines.push("  its port is free in a moment: start again then".to_owned());
                }
                Some(Holder::Gateway(h)) => {
                    lines.push(format!(
                        "  held by gateway pid {} (version {}, profile \"{}\", up {})",
                        h.pid,
                        h.version,
                        h.profile,
                        human_uptime(h.uptime_ms)
                    ));
                    // A second instance needs a profile of its own as well as a port:
                    // `--port` alone would be refused for the same profile.
                    lines.push(format!(
                        "  stop it with `{}`, or start a second instance with `gateway --profile <name> --port <port>`",
                        stop_command(endpoint)
                    ));
                }
                _ => match &self.owners {
                    Some(PortOwners::EphemeralRange { low, high }) => {
                        lines.push(format!(
                            "  held by an outgoing connection's local port: {port} is in this host's ephemeral port range {low}-{high}"
                        ));
                        lines.push(format!(
                            "  start on a port outside {low}-{high} with `gateway --port <port>`"
                        ));
                    }
                    owners => {
                        let who = owners.as_ref().map_or_else(
                            || "a process not visible to this user".to_owned(),
                            PortOwners::describe,
                        );
                        lines.push(format!(
                            "  held by {who}, which does not answer as a gateway"
                        ));
                        lines.push(
                            "  free the port, or start on another one with `gateway --port <port>`"
                                .to_owned(),
                        );
                        // Only a holder we can see can be signalled: `--force` would
                        // fail on any other.
                        if matches!(owners, Some(PortOwners::Visible(_))) {
                            lines.push(format!(
                                "  to take the port anyway: `{}`",
                                force_command(endpoint)
                            ));
                        }
                    }
                },
            }
        }
        if let GatewayLockError::ProfileInUse {
            profile,
            holder_port,
            ..
        } = &self.error
        {
            let stop = match holder_port {
                Some(port) => format!("gateway stop --port {port}"),
                None => format!("gateway stop --profile {profile} --port <its port>"),
            };
            lines.push(format!(
                "  one gateway per profile: stop that one with `{stop}`, or use another profile with `gateway --profile <name> --port <port>`"
            ));
        }
        lines
    }

    /// Whether the port's holder did not answer as a gateway yet may still turn out to
    /// be one: a process we can see, bound, perhaps not serving yet. After an eviction
    /// that is likely another start that took the freed port first.
    pub fn holder_may_be_a_starting_gateway(&self) -> bool {
        matches!(
            (&self.error, &self.holder, &self.owners),
            (
                GatewayLockError::AlreadyListening { .. },
                Some(Holder::Unconfirmed),
                Some(PortOwners::Visible(_))
            )
        )
    }

    /// Whether the refusal is "the port is in use", which `--force` can act on.
    pub fn port_in_use(&self) -> Option<crate::Endpoint> {
        match &self.error {
            GatewayLockError::AlreadyListening { endpoint } => Some(*endpoint),
            _ => None,
        }
    }
}

/// The `gateway --force` command line that takes `endpoint`'s port. A held `[::1]`
/// companion is taken by the default bind, which holds both loopbacks.
fn force_command(endpoint: &crate::Endpoint) -> String {
    let port = endpoint.port();
    let default_bind = [
        std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
    ];
    if default_bind.contains(&endpoint.ip()) {
        format!("gateway --force --port {port}")
    } else {
        format!("gateway --force --port {port} --bind {}", endpoint.ip())
    }
}

/// The `gateway stop` command line that reaches the gateway on `endpoint`.
fn stop_command(endpoint: &crate::Endpoint) -> String {
    let port = endpoint.port();
    if endpoint.ip() == std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST) {
        format!("gateway stop --port {port}")
    } else {
        format!("gateway stop --port {port} --bind {}", endpoint.ip())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::Endpoint;
    use crate::identity::{GatewayIdentity, HealthReport};
    use std::io;

    fn endpoint() -> Endpoint {
        Endpoint::new("127.0.0.1".parse().unwrap(), 4321)
    }

    fn gateway_holder() -> Holder {
        let id = GatewayIdentity::fixture(77, 4321);
        Holder::Gateway(Box::new(HealthReport::live(&id, 3_723_000)))
    }

    #[test]
    fn port_held_by_a_gateway_is_final() {
        let r = Refusal {
            error: GatewayLockError::AlreadyListening {
                endpoint: endpoint(),
            },
            holder: Some(gateway_holder()),
            owners: None,
        };
        assert_eq!(r.exit_code(), ExitCode::Refused);
        let lines = r.report_lines();
        assert_eq!(
            lines[0],
            "GatewayLockError: another gateway instance is already listening on ws://127.0.0.1:4321"
        );
        assert!(lines[1].contains("pid 77") && lines[1].contains("up 1h 2m 3s"));
        assert_eq!(
            lines[2],
            "  stop it with `gateway stop --port 4321`, or start a second instance with `gateway --profile <name> --port <port>`"
        );
        assert!(lines[1..].iter().all(|l| l.starts_with("  ")));
    }

    #[test]
    fn port_held_by_a_stopping_gateway_is_temporary() {
        let Holder::Gateway(mut report) = gateway_holder() else {
            unreachable!()
        };
        report.ok = false;
        report.status = crate::identity::DRAINING_STATUS.into();
        let r = Refusal {
            error: GatewayLockError::AlreadyListening {
                endpoint: endpoint(),
            },
            holder: Some(Holder::Gateway(report)),
            owners: None,
        };
        assert_eq!(r.exit_code(), ExitCode::PortHeld);
        assert!(r.report_lines()[1].contains("which is stopping"));
    }

    #[test]
    fn port_held_by_something_else_is_temporary() {
        let r = Refusal {
            error: GatewayLockError::AlreadyListening {
                endpoint: endpoint(),
            },
            holder: Some(Holder::Unconfirmed),
            owners: Some(PortOwners::Visible(vec![crate::port_owner::ProcessInfo {
                pid: 31,
                program: Some("nc".into()),
            }])),
        };
        assert_eq!(r.exit_code(), ExitCode::PortHeld);
        let lines = r.report_lines();
        assert_eq!(
            lines[1],
            "  held by pid 31 (nc), which does not answer as a gateway"
        );
        assert_eq!(
            lines[3],
            "  to take the port anyway: `gateway --force --port 4321`"
        );
        assert!(lines[1..].iter().all(|l| l.starts_with("  ")));
    }

    #[test]
    fn the_force_hint_names_a_bind_address_other_than_the_default() {
        let r = Refusal {
            error: GatewayLockError::AlreadyListening {
                endpoint: Endpoint::new("127.0.0.2".parse().unwrap(), 4321),
            },
            holder: Some(Holder::Unconfirmed),
            owners: Some(PortOwners::Visible(vec![crate::port_owner::ProcessInfo {
                pid: 31,
                program: None,
            }])),
        };
        assert!(r.report_lines()[3].contains("`gateway --force --port 4321 --bind 127.0.0.2`"));
    }

    #[test]
    fn a_holder_out_of_sight_gets_no_force_hint_it_could_not_follow() {
        for owners in [None, Some(PortOwners::Hidden), Some(PortOwners::Unknown)] {
            let r = Refusal {
                error: GatewayLockError::AlreadyListening {
                    endpoint: endpoint(),
                },
                holder: Some(Holder::Unconfirmed),
                owners,
            };
            assert!(
                r.report_lines().iter().all(|l| !l.contains("--force")),
                "{:?}",
                r.report_lines()
            );
        }
    }

    #[test]
    fn a_visible_holder_that_does_not_answer_may_be_a_gateway_still_starting() {
        let seen = Refusal {
            error: GatewayLockError::AlreadyListening {
                endpoint: endpoint(),
            },
            holder: Some(Holder::Unconfirmed),
            owners: Some(PortOwners::Visible(vec![])),
        };
        assert!(seen.holder_may_be_a_starting_gateway());
        let a_gateway = Refusal {
            holder: Some(gateway_holder()),
            owners: None,
            ..seen
        };
        assert!(!a_gateway.holder_may_be_a_starting_gateway());
    }

    #[test]
    fn a_port_taken_by_an_outgoing_connection_says_so_and_points_out_of_the_range() {
        let r = Refusal {
            error: GatewayLockError::AlreadyListening {
                endpoint: endpoint(),
            },
            holder: Some(Holder::Unconfirmed),
            owners: Some(PortOwners::EphemeralRange {
                low: 4000,
                high: 5000,
            }),
        };
        assert_eq!(r.exit_code(), ExitCode::PortHeld);
        let lines = r.report_lines();
        assert!(lines[1].contains("outgoing connection") && lines[1].contains("4000-5000"));
        assert!(lines[2].contains("outside 4000-5000"), "{}", lines[2]);
    }

    #[test]
    fn the_stop_hint_names_a_bind_address_other_than_the_default() {
        let Holder::Gateway(report) = gateway_holder() else {
            unreachable!()
        };
        let r = Refusal {
            error: GatewayLockError::AlreadyListening {
                endpoint: Endpoint::new("127.0.0.2".parse().unwrap(), 4321),
            },
            holder: Some(Holder::Gateway(report)),
            owners: None,
        };
        assert!(r.report_lines()[2].contains("`gateway stop --port 4321 --bind 127.0.0.2`"));
    }

    #[test]
    fn other_bind_failures_are_os_errors() {
        let r = Refusal {
            error: GatewayLockError::BindFailed {
                endpoint: endpoint(),
                source: io::Error::from(io::ErrorKind::PermissionDenied),
            },
            holder: None,
            owners: None,
        };
        assert_eq!(r.exit_code(), ExitCode::BindFailed);
        assert_eq!(r.report_lines().len(), 1);
    }
}
