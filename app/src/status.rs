//! `gateway status`: what holds the port, as a summary or one JSON object.

use gateway_domain::ports::{PortOwnerLookup, ProfileLocker};
use std::time::Duration;

use gateway_adapters::holder_probe::is_accepting;
use gateway_adapters::{FileProfileLocker, HttpHolderProbe, ProcPortOwners};

use gateway_domain::port_status::PortStatus;
use gateway_domain::profile::ProfileName;
use gateway_domain::target_profile::{as_stopped, check_profile};
use gateway_domain::{Endpoint, ExitCode, Holder};

use crate::cli::{StatusArgs, Target};

/// A running gateway answers `/healthz` within this; `status` is not in a hurry.
const HEALTH_BUDGET: Duration = Duration::from_secs(1);
const CONNECT_BUDGET: Duration = Duration::from_millis(500);

pub async fn run(args: StatusArgs) -> ExitCode {
    let status = observe_target(&args.target).await;
    if args.json {
        println!("{}", status.to_json());
    } else {
        println!("{}", status.summary());
    }
    status.exit_code()
}

/// Where the gateway of this target listens: `--bind`, and the port as for a start,
/// except that the profile's lock file names the port while its lock is held.
pub fn endpoint(target: &Target) -> Endpoint {
    let held_lock_port = target
        .state_dir()
        .and_then(|dir| FileProfileLocker.current_holder(&dir))
        .map(|record| record.port);
    Endpoint::new(target.bind, target.port_with_held_lock(held_lock_port))
}

/// What is on the target's port, as the profile the user named sees it: a gateway
/// of another profile is not that profile's gateway. It counts as "not running" (said
/// on stderr, with the profile it has), so nothing acts on it.
pub async fn observe_target(target: &Target) -> PortStatus {
    let observed = observe(endpoint(target)).await;
    let named = target.named_profile();
    match check_profile(&observed, named.as_ref().map(ProfileName::as_str)) {
        Ok(()) => observed,
        Err(other) => {
            eprintln!("{other}");
            as_stopped(&observed)
        }
    }
}

/// Asks the port (`/healthz`), the TCP stack (does it accept?) and the OS (who owns
/// the listening socket?).
pub async fn observe(endpoint: Endpoint) -> PortStatus {
    let probe = HttpHolderProbe {
        budget: HEALTH_BUDGET,
    };
    // A gateway that answers over TLS is reported (and stopped, restarted) as wss://.
    let (endpoint, holder) = probe.locate(endpoint).await;
    let health = match holder {
        Holder::Gateway(report) => Some(*report),
        Holder::Unconfirmed => None,
    };
    let accepting = health.is_some() || is_accepting(endpoint, CONNECT_BUDGET).await;
    let owners = ProcPortOwners.owners(endpoint).await;
    PortStatus::observe(endpoint, health, accepting, owners)
}
