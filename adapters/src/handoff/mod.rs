//! Restarting without letting go: what the old process passes across `exec`
//! ([`launch`]), what the new one takes ([`inherit`]), and the socket through which
//! `gateway restart` asks for it ([`control`], found through the pid that holds the
//! port). The decisions are in
//! `gateway_domain::handoff`.

pub mod control;
mod early_pid;
pub mod inherit;
pub mod launch;
pub mod session_channel;

pub use control::{ControlError, ControlSocket, RestartCall, request_restart};
pub use inherit::{
    Inheritance, Predecessor, take_handoff, take_socket_activation, write_to_service_log,
};
pub use launch::{ExecLauncher, HeldDescriptors};
