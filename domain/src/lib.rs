//! The gateway's domain: what the single-instance lock means, how a bind failure is
//! classified, which exit code each outcome earns, and the control protocol's rules.
//! Nothing here touches a socket, a file, a clock or a runtime. The ports through which
//! it reaches them are listed together in [`ports`].
#![forbid(unsafe_code)]

pub mod auth_delay;
pub mod classify;
pub mod cluster;
pub mod config;
pub mod endpoint;
pub mod eviction;
pub mod exit_code;
pub mod guards;
pub mod handoff;
pub mod holder;
pub mod identity;
pub mod lock_error;
pub mod lock_policy;
pub mod port_lock;
pub mod port_owner;
pub mod port_status;
pub mod ports;
pub mod process_control;
pub mod profile;
pub mod protocol;
pub mod session_move;
pub mod target_profile;
pub mod tls_files;
pub mod token_source;
pub mod uptime;

pub use classify::classify_bind_error;
pub use endpoint::Endpoint;
pub use exit_code::ExitCode;
pub use holder::Holder;
pub use identity::{GatewayIdentity, HealthReport};
pub use lock_error::{GatewayConfigError, GatewayLockError};
