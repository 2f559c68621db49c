//! The WebSocket endpoint: the HTTP upgrade, then one session per client.

mod adopt;
mod closing;
mod continuation;
mod frame_meter;
mod frames;
mod handover;
mod inbound_guard;
mod message_budget;
mod receive;
mod session;
mod socket;
mod upgrade;
mod write_through;

pub(crate) use handover::{MoveOffer, move_sessions};
pub(crate) use message_budget::MessageBudget;
pub(crate) use receive::receive_sessions;
pub(crate) use upgrade::{is_upgrade_request, upgrade};
