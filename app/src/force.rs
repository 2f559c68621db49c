//! `gateway --force`: take the port from whatever holds it. Wiring only: the policy
//! (name the holder, SIGTERM, SIGKILL after 2 s; a start that got there first wins)
//! is `gateway_domain::eviction`.

use std::future::Future;

use gateway_adapters::{ProcPortOwners, SystemProcesses};
use gateway_domain::eviction::{self, NEWCOMER_GRACE};
use gateway_domain::lock_policy::Refusal;
use gateway_domain::port_lock::HeldPort;
use tokio::time::Instant;

/// Takes the port with `take` (one bind attempt, refusals unannounced); when it is
/// in use, evicts the holders, saying each step on stderr, and takes it again. When
/// the second attempt is refused too, the port's holder *now* (another start that
/// was quicker) has just been asked what it is: the refusal names it, as a plain
/// start's would. A newcomer that is bound but not answering yet is asked again for
/// up to [`NEWCOMER_GRACE`].
pub async fn take_port<L, Take, Attempt>(mut take: Take) -> Result<HeldPort<L>, Refusal>
where
    Take: FnMut() -> Attempt,
    Attempt: Future<Output = Result<HeldPort<L>, Refusal>>,
{
    let refusal = match take().await {
        Ok(held) => return Ok(held),
        Err(refusal) => refusal,
    };
    let Some(taken) = refusal.port_in_use() else {
        return Err(refusal);
    };
    let say = |line: String| eprintln!("gateway: {line}");
    let evicted = eviction::evict(
        taken,
        &ProcPortOwners,
        &SystemProcesses,
        std::process::id(),
        say,
    )
    .await;
    if let Err(why) = evicted {
        eprintln!("gateway: {why}");
        return Err(refusal);
    }
    let deadline = Instant::now() + NEWCOMER_GRACE;
    loop {
        let refusal = match take().await {
            Ok(held) => return Ok(held),
            Err(refusal) => refusal,
        };
        if !refusal.holder_may_be_a_starting_gateway() || Instant::now() >= deadline {
            return Err(refusal);
        }
    }
}
