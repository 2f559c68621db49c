//! One active gateway across hosts (docs/reference.md#cluster): the `ClusterLock` port an
//! engine such as etcd implements, the clock it is judged by, and the pure policy
//! that decides who is active, when to step down, and how refusals are reported.

pub mod access;
pub mod clock;
pub mod custody;
pub mod error;
pub mod key;
pub mod lease_watch;
pub mod lock;
pub mod role;

pub use clock::Reading;
pub use custody::LeaseCustody;
pub use error::ClusterLockError;
pub use key::ClusterKey;
pub use lease_watch::{LeaseWatch, Standing};
pub use lock::{Acquisition, HeldLock, HolderRecord, LeaseId, LockFault};
pub use role::{AfterLoss, ClusterView, Role};
