//! The gateway's adapters: every place it touches the OS or the network. Each one
//! implements a port of `gateway-domain` and maps OS errors to domain errors itself.

pub mod cluster;
pub mod fd_limit;
pub mod handoff;
pub mod holder_probe;
pub mod port_owner;
pub mod process_signal;
pub mod profile_lock;
pub mod server;
pub mod signals;
pub mod systemd_notifier;
pub mod tcp_binder;
pub mod tls;
pub mod token_file;
pub mod unix_time;

pub use cluster::{BootClock, ClusterGate, EtcdClusterLock, Seat};
pub use holder_probe::HttpHolderProbe;
pub use port_owner::ProcPortOwners;
pub use process_signal::SystemProcesses;
pub use profile_lock::{FileProfileLocker, ProfileLockGuard};
pub use server::{GatewayServer, ProtocolTimings, RestartHistory, ServerSettings};
pub use systemd_notifier::SystemdNotifier;
pub use tcp_binder::TcpBinder;
pub use tls::TlsTermination;
