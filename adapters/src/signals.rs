//! The requests a serving gateway answers, from the world: SIGTERM and SIGINT (stop;
//! the second one cuts the stop short), and SIGHUP or `gateway restart` on the control
//! socket (restart by handoff), merged into the domain's two trigger ports.

use std::io;

use async_trait::async_trait;
use gateway_domain::handoff::RestartAnswer;
use gateway_domain::ports::{RestartRequest, RestartResponder, RestartTrigger, StopTrigger};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::handoff::control::{ControlSocket, RestartCall};

/// SIGTERM and SIGINT, caught from the moment they are installed.
pub struct StopSignals {
    terminate: Signal,
    interrupt: Signal,
}

impl StopSignals {
    pub fn install() -> io::Result<Self> {
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }
}

#[async_trait]
impl StopTrigger for StopSignals {
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }
}

/// SIGHUP, whose default action would end the process: installed before anything
/// else, so a reload asked for early is a restart, not a crash.
pub struct RestartSignal(Signal);

impl RestartSignal {
    pub fn install() -> io::Result<Self> {
        signal(SignalKind::hangup()).map(Self)
    }
}

/// Every way to ask for a restart: SIGHUP, and the control socket when there is one.
/// The control socket is read by a task of its own, so that a request already
/// accepted is never lost when the lifecycle stops waiting for the next one (waiting
/// is cancelled whenever another event wins).
pub struct RestartTriggers {
    /// `None` where no signal handler is wanted (a gateway run in-process by tests).
    signal: Option<RestartSignal>,
    /// Well-formed `gateway restart` calls, in arrival order.
    calls: Option<mpsc::Receiver<RestartCall>>,
    /// The task reading the control socket; ended (and the socket closed) on drop.
    reader: Option<JoinHandle<()>>,
}

impl RestartTriggers {
    pub fn new(signal: Option<RestartSignal>, control: Option<ControlSocket>) -> Self {
        let Some(control) = control else {
            return Self {
                signal,
                calls: None,
                reader: None,
            };
        };
        let (sender, calls) = mpsc::channel(8);
        let reader = tokio::spawn(async move {
            loop {
                let call = control.next_request().await;
                if sender.send(call).await.is_err() {
                    return;
                }
            }
        });
        Self {
            signal,
            calls: Some(calls),
            reader: Some(reader),
        }
    }
}

impl Drop for RestartTriggers {
    fn drop(&mut self) {
        if let Some(reader) = self.reader.take() {
            reader.abort();
        }
    }
}

#[async_trait]
impl RestartTrigger for RestartTriggers {
    async fn next(&mut self) -> RestartRequest {
        let hangup = async {
            match &mut self.signal {
                Some(signal) => signal.0.recv().await,
                None => std::future::pending().await,
            }
        };
        let call = async {
            match &mut self.calls {
                Some(calls) => match calls.recv().await {
                    Some(call) => call,
                    None => std::future::pending().await,
                },
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = hangup => RestartRequest { trigger: "SIGHUP", responder: None },
            call = call => RestartRequest {
                trigger: "gateway restart",
                responder: Some(Box::new(call)),
            },
        }
    }
}

#[async_trait]
impl RestartResponder for RestartCall {
    async fn answer(self: Box<Self>, answer: &RestartAnswer) {
        RestartCall::answer(*self, answer).await;
    }
}
