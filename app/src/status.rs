//! `gateway status`: what holds the port, as a summary or one JSON object.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use gateway_adapters::holder_probe::is_accepting;
use gateway_adapters::{HttpHolderProbe, ProcPortOwners};
use gateway_domain::port_owner::PortOwnerLookup;
use gateway_domain::port_status::PortStatus;
use gateway_domain::{Endpoint, ExitCode, Holder, HolderProbe};

use crate::cli::{StatusArgs, Target};

/// A running gateway answers `/healthz` within this; `status` is not in a hurry.
const HEALTH_BUDGET: Duration = Duration::from_secs(1);
const CONNECT_BUDGET: Duration = Duration::from_millis(500);

pub async fn run(args: StatusArgs) -> ExitCode {
    let status = observe(endpoint(&args.target)).await;
    if args.json {
        println!("{}", status.to_json());
    } else {
        println!("{}", status.summary());
    }
    status.exit_code()
}

/// The loopback endpoint a gateway of this target listens on.
pub fn endpoint(target: &Target) -> Endpoint {
    Endpoint::new(IpAddr::V4(Ipv4Addr::LOCALHOST), target.port())
}

/// Asks the port (`/healthz`), the TCP stack (does it accept?) and the OS (who owns
/// the listening socket?).
pub async fn observe(endpoint: Endpoint) -> PortStatus {
    let probe = HttpHolderProbe {
        budget: HEALTH_BUDGET,
    };
    let health = match probe.identify(endpoint).await {
        Holder::Gateway(report) => Some(*report),
        Holder::Unconfirmed => None,
    };
    let accepting = health.is_some() || is_accepting(endpoint, CONNECT_BUDGET).await;
    let owners = ProcPortOwners.owners(endpoint);
    PortStatus::observe(endpoint, health, accepting, owners)
}
