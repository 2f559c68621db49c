//! The start sequence's lock steps, as `daemon` calls them. The decisions (probe the
//! holder only on "already listening", ask the OS only when it is unconfirmed; a held
//! profile names its holder) live in `gateway-domain`, tested there with mocks.

pub use gateway_domain::port_lock::take_port_lock;
pub use gateway_domain::profile::take_profile_lock;
