//! The WebSocket endpoint: the HTTP upgrade, then one session per client.

mod adopt;
mod frame_meter;
mod handover;
mod inbound_guard;
mod message_budget;
mod session;
mod upgrade;

pub(crate) use handover::{MoveOffer, move_sessions, receive_sessions};
pub(crate) use message_budget::MessageBudget;
pub(crate) use upgrade::{is_upgrade_request, upgrade};
