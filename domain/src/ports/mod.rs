//! Every port of the domain, defined here and imported from here only: the traits
//! through which it reaches the world, each with its MUST-contracts. `docs/architecture.md`
//! has the same list as a table with each port's real adapter and test double.
//!
//! | port | promises |
//! |---|---|
//! | [`PortBinder`] | an exclusive listener, or `AlreadyListening` / `BindFailed` |
//! | [`HolderProbe`] | what holds a taken port, within 150 ms, never failing |
//! | [`PortOwnerLookup`] | which processes own a port's listening socket; when it came free |
//! | [`ProfileLocker`] | the profile's lock without waiting, and who holds it |
//! | [`ProcessControl`] | signals to other processes (never pid 0/1 or itself); liveness |
//! | [`ServingGateway`] | the stop steps, one method each |
//! | [`ServiceNotifier`] | best-effort word to the service manager |
//! | [`SuccessorLauncher`], [`Successor`] | a restart's new process and its report |
//! | [`ClusterLock`] | the cross-host lock on a lease, with its fencing token |
//! | [`Clock`] | monotonic and boot time, read together |
//! | [`RoleBoard`] | the cluster role, written by the membership, read by the server |
//! | [`StopTrigger`], [`RestartTrigger`] | stop and restart requests, whatever their origin |

mod clock;
mod cluster_lock;
mod holder_probe;
mod notifier;
mod port_binder;
mod port_owner_lookup;
mod process_control;
mod profile_locker;
mod role_board;
mod serving;
mod successor;
mod triggers;

pub use clock::Clock;
#[cfg(test)]
pub use clock::MockClock;
pub use cluster_lock::ClusterLock;
pub use holder_probe::HolderProbe;
pub use notifier::ServiceNotifier;
pub use port_binder::PortBinder;
pub use port_owner_lookup::PortOwnerLookup;
#[cfg(test)]
pub use process_control::MockProcessControl;
pub use process_control::ProcessControl;
pub use profile_locker::ProfileLocker;
pub use role_board::RoleBoard;
pub use serving::{MoveReport, ServingGateway};
pub use successor::{Successor, SuccessorLauncher};
pub use triggers::{RestartRequest, RestartResponder, RestartTrigger, StopTrigger};
