//! The new process's side of the move (docs/reference.md#restart; docs/lock.md, "Sessions
//! move with the restart"): receives the predecessor's sessions on the session
//! channel and serves each one it acknowledged as if it had connected here.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use gateway_domain::protocol::MAX_PAYLOAD;
use tokio::time::Instant;

use super::adopt::{CarriedBytes, SessionIo, adopt_tcp};
use super::continuation::Continuation;
use super::session;
use super::socket::session_socket;
use crate::handoff::session_channel::{Arrival, ChannelError, SessionReceiver};
use crate::server::counted_stream::CountedStream;
use crate::server::state::GatewayState;
use crate::unix_time::unix_ms;

/// The new process's side: receives the predecessor's sessions on the channel
/// `fd`, and serves each one acknowledged as if it had connected here.
pub(crate) fn receive_sessions(state: Arc<GatewayState>, fd: OwnedFd, previous_pid: u32) {
    tokio::spawn(async move {
        let mut receiver = match SessionReceiver::new(fd) {
            Ok(receiver) => receiver,
            Err(error) => {
                tracing::warn!(%error, "cannot take the predecessor's sessions");
                return;
            }
        };
        loop {
            match receiver.next_batch().await {
                Ok(Some(arrivals)) => {
                    for arrival in arrivals {
                        adopt(&state, arrival, previous_pid);
                    }
                }
                Ok(None) | Err(ChannelError::Closed) => return,
                Err(error) => {
                    tracing::warn!(%error, "the session channel failed");
                    return;
                }
            }
        }
    });
}

/// Serves one moved session: counted like any connection (past the cap: it is
/// connected already), `restarted` first, then on.
fn adopt(state: &Arc<GatewayState>, arrival: Arrival, previous_pid: u32) {
    let Arrival { fd, record } = arrival;
    let stream = match adopt_tcp(fd) {
        Ok(stream) => stream,
        Err(error) => {
            tracing::warn!(%error, "a moved session's connection is unusable");
            return;
        }
    };
    let slot = state.count_connection();
    let state = Arc::clone(state);
    let tasks = state.websockets.tasks.clone();
    tasks.spawn(async move {
        let _slot = slot;
        let io = SessionIo::Adopted(CarriedBytes::new(
            CountedStream::new(stream, state.metrics.byte_counters()),
            record.unparsed,
        ));
        let socket = session_socket(io, &state, MAX_PAYLOAD).await;
        let due_in = first_tick_in(
            record.last_tick_unix_ms,
            state.timings.tick_interval,
            unix_ms(),
        );
        let continuation = Continuation {
            client: record.client,
            fencing_token: record.fencing_token,
            last_seq: record.next_seq.saturating_sub(1),
            last_tick_unix_ms: record.last_tick_unix_ms,
            next_tick: Instant::now() + due_in,
            last_request: None,
        };
        session::resume(socket, state, continuation, previous_pid).await;
    });
}

/// How long after adoption a moved session's first tick is due: `period` after its last
/// one (`last_tick_unix_ms`), at once if that is past, never later than `period` from
/// now (a clock stepped back).
fn first_tick_in(last_tick_unix_ms: u64, period: Duration, now_unix_ms: u64) -> Duration {
    let period_ms = u64::try_from(period.as_millis()).unwrap_or(u64::MAX);
    let due_ms = last_tick_unix_ms
        .saturating_add(period_ms)
        .saturating_sub(now_unix_ms);
    Duration::from_millis(due_ms.min(period_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERIOD: Duration = Duration::from_secs(30);

    #[test]
    fn a_moved_session_s_next_tick_keeps_its_schedule() {
        assert_eq!(
            first_tick_in(100_000, PERIOD, 110_000),
            Duration::from_secs(20)
        );
    }

    #[test]
    fn a_tick_overdue_at_adoption_comes_at_once() {
        assert_eq!(first_tick_in(100_000, PERIOD, 140_000), Duration::ZERO);
    }

    #[test]
    fn a_last_tick_in_the_future_never_delays_the_next_past_one_period() {
        assert_eq!(first_tick_in(200_000, PERIOD, 100_000), PERIOD);
    }
}
