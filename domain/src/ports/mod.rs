//! Every port of the domain in one place: the traits through which it reaches the
//! world, each with its MUST-contract where it is defined. `docs/architecture.md`
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

mod role_board;
mod triggers;

pub use role_board::RoleBoard;
pub use triggers::{RestartRequest, RestartResponder, RestartTrigger, StopTrigger};

pub use crate::cluster::clock::Clock;
pub use crate::cluster::lock::ClusterLock;
pub use crate::handoff::{Successor, SuccessorLauncher};
pub use crate::holder::HolderProbe;
pub use crate::notifier::ServiceNotifier;
pub use crate::port_binder::PortBinder;
pub use crate::port_owner::PortOwnerLookup;
pub use crate::process_control::ProcessControl;
pub use crate::profile::ProfileLocker;
pub use crate::serving::ServingGateway;
