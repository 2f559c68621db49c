//! The WebSocket endpoint: the HTTP upgrade, then one session per client.

mod read_budget;
mod session;
mod upgrade;

pub(crate) use upgrade::{is_upgrade_request, upgrade};
