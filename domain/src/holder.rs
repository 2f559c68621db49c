//! Who holds a port the gateway could not take, and the port that finds out.

use std::time::Duration;

use crate::identity::HealthReport;

/// How long the holder of a taken port has to answer `/healthz` before it is taken
/// for "something else". Short, because a refused start must exit within 200 ms.
pub const HOLDER_PROBE_BUDGET: Duration = Duration::from_millis(150);

/// What answered on a port the gateway could not bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// A gateway, which described itself.
    Gateway(Box<HealthReport>),
    /// Anything else: no answer in time, not HTTP, or not a gateway's body.
    Unconfirmed,
}
