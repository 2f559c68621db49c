//! Who owns a listening socket, read from Linux's `/proc` with the `procfs` crate:
//! the `/proc/net/tcp{,6}` LISTEN entries give the socket inode, and the process
//! whose `/proc/PID/fd` links to that inode is the owner. `procfs` is used rather
//! than `listeners` because it needs no extra system crates and reports exactly
//! what the OS allows this user to see (other users' fds are unreadable).

use gateway_domain::ports::PortOwnerLookup;
use std::time::Duration;

use async_trait::async_trait;
use gateway_domain::Endpoint;
use gateway_domain::port_owner::PortOwners;
#[cfg(target_os = "linux")]
use gateway_domain::port_owner::ProcessInfo;

/// How often `freed_within` looks again.
const POLL: Duration = Duration::from_millis(10);

/// Looks up listening-socket owners in `/proc`.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcPortOwners;

#[async_trait]
impl PortOwnerLookup for ProcPortOwners {
    async fn owners(&self, endpoint: Endpoint) -> PortOwners {
        // A look walks every process's descriptors: a blocking job, off the runtime.
        tokio::task::spawn_blocking(move || Self::look(endpoint))
            .await
            .unwrap_or(PortOwners::Unknown)
    }

    async fn freed_within(&self, endpoint: Endpoint, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if matches!(
                self.owners(endpoint).await,
                PortOwners::None | PortOwners::EphemeralRange { .. }
            ) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

impl ProcPortOwners {
    /// One look, on the calling thread.
    #[cfg(target_os = "linux")]
    fn look(endpoint: Endpoint) -> PortOwners {
        use procfs::net::TcpState;
        use procfs::process::FDTarget;
        use std::collections::HashSet;

        let port = endpoint.port();
        let (Ok(tcp4), Ok(tcp6)) = (procfs::net::tcp(), procfs::net::tcp6()) else {
            return PortOwners::Unknown;
        };
        let inodes: HashSet<u64> = tcp4
            .into_iter()
            .chain(tcp6)
            .filter(|e| e.state == TcpState::Listen && e.local_address.port() == port)
            .map(|e| e.inode)
            .collect();
        if inodes.is_empty() {
            return match ephemeral_range() {
                Some((low, high)) if (low..=high).contains(&port) => {
                    PortOwners::EphemeralRange { low, high }
                }
                _ => PortOwners::None,
            };
        }
        let Ok(processes) = procfs::process::all_processes() else {
            return PortOwners::Unknown;
        };
        let mut owners: Vec<ProcessInfo> = Vec::new();
        for process in processes.flatten() {
            let Ok(fds) = process.fd() else { continue };
            let owns = fds
                .flatten()
                .any(|fd| matches!(fd.target, FDTarget::Socket(inode) if inodes.contains(&inode)));
            if owns {
                let pid = u32::try_from(process.pid).unwrap_or_default();
                let program = process.stat().ok().map(|s| s.comm);
                owners.push(ProcessInfo { pid, program });
            }
        }
        if owners.is_empty() {
            PortOwners::Hidden
        } else {
            PortOwners::Visible(owners)
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn look(_endpoint: Endpoint) -> PortOwners {
        PortOwners::Unknown
    }
}

/// The OS's range of local ports for outgoing connections.
#[cfg(target_os = "linux")]
fn ephemeral_range() -> Option<(u16, u16)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut bounds = text.split_whitespace().map(str::parse::<u16>);
    Some((bounds.next()?.ok()?, bounds.next()?.ok()?))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn finds_this_process_as_the_owner_of_its_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let owners = ProcPortOwners::look(Endpoint::new("127.0.0.1".parse().unwrap(), port));
        let PortOwners::Visible(owners) = owners else {
            panic!("not visible: {owners:?}")
        };
        assert!(owners.iter().any(|p| p.pid == std::process::id()));
    }

    #[test]
    fn a_free_port_has_no_owner() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let owners = ProcPortOwners::look(Endpoint::new("127.0.0.1".parse().unwrap(), port));
        let in_range = ephemeral_range().is_some_and(|(low, high)| (low..=high).contains(&port));
        if in_range {
            assert!(
                matches!(owners, PortOwners::EphemeralRange { .. }),
                "{owners:?}"
            );
        } else {
            assert_eq!(owners, PortOwners::None);
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod waiting {
    use super::*;

    #[tokio::test]
    async fn a_port_closed_while_waiting_is_seen_free() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = Endpoint::new(
            "127.0.0.1".parse().unwrap(),
            listener.local_addr().unwrap().port(),
        );
        assert!(
            !ProcPortOwners
                .freed_within(endpoint, Duration::from_millis(30))
                .await
        );
        let closer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            drop(listener);
        });
        assert!(
            ProcPortOwners
                .freed_within(endpoint, Duration::from_secs(10))
                .await
        );
        closer.await.unwrap();
    }
}
