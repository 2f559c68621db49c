//! The cluster lock's adapters: etcd (over TLS, as a user, when asked) behind the domain's `ClusterLock` port, the
//! clocks a lease is judged by, and the gate through which the server learns its role.

mod boot_clock;
mod etcd_auth;
mod etcd_json;
mod etcd_lock;
mod etcd_tls;
mod etcd_transport;
mod gate;
mod hostname;

pub use boot_clock::BootClock;
pub use etcd_auth::EtcdUser;
pub use etcd_lock::EtcdClusterLock;
pub use etcd_tls::EtcdTls;
pub use etcd_transport::EtcdAccess;
pub use gate::{ClusterGate, Seat};
pub use hostname::this_host;
