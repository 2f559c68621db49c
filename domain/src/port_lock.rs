//! Taking the port lock: the listener on the requested address and, on `127.0.0.1`,
//! its `[::1]` companion, so that `ws://localhost:PORT` can never reach a second
//! gateway whichever family `localhost` resolves to. When it is refused, the holder
//! is asked what it is, so that the refusal earns the right exit code.

use crate::classify::is_ipv6_loopback_missing;
use crate::endpoint::Endpoint;
use crate::holder::Holder;
use crate::lock_error::GatewayLockError;
use crate::lock_policy::Refusal;
use crate::ports::{HolderProbe, PortBinder, PortOwnerLookup};

/// The port, held. Dropping it releases the port.
#[derive(Debug)]
pub struct HeldPort<L> {
    /// The listeners, the requested endpoint first.
    pub listeners: Vec<(Endpoint, L)>,
    /// Set when the `[::1]` companion could not be held because the host has no IPv6
    /// loopback: worth one log line, not a refusal.
    pub ipv6_loopback_missing: Option<GatewayLockError>,
}

/// Binds `endpoint`, then its `[::1]` companion when there is one. On any refusal,
/// whatever was already bound is dropped, so nothing stays held.
pub async fn acquire<B: PortBinder>(
    binder: &B,
    endpoint: Endpoint,
) -> Result<HeldPort<B::Listener>, GatewayLockError> {
    let primary = binder.bind(endpoint).await?;
    let mut held = HeldPort {
        listeners: vec![(endpoint, primary)],
        ipv6_loopback_missing: None,
    };
    if let Some(companion) = endpoint.ipv6_loopback_companion() {
        match binder.bind(companion).await {
            Ok(listener) => held.listeners.push((companion, listener)),
            Err(error) if is_ipv6_loopback_missing(&error) => {
                held.ipv6_loopback_missing = Some(error);
            }
            Err(error) => return Err(error),
        }
    }
    Ok(held)
}

/// Binds `endpoint` (and its `[::1]` companion); on failure, asks the holder of an
/// address in use what it is and, when it is not a gateway, asks the OS who it is.
/// `on_refused` hears of the failure at once, before any of that asking, so the
/// user's first line never waits on the probe. Nothing stays bound when this
/// returns `Err`.
pub async fn take_port_lock<B: PortBinder, P: HolderProbe, O: PortOwnerLookup>(
    binder: &B,
    probe: &P,
    owners: &O,
    endpoint: Endpoint,
    on_refused: impl FnOnce(&GatewayLockError),
) -> Result<HeldPort<B::Listener>, Refusal> {
    let error = match acquire(binder, endpoint).await {
        Ok(held) => return Ok(held),
        Err(error) => error,
    };
    on_refused(&error);
    let GatewayLockError::AlreadyListening { endpoint: taken } = &error else {
        return Err(Refusal {
            error,
            holder: None,
            owners: None,
        });
    };
    let holder = probe.identify(*taken).await;
    let owners = match holder {
        Holder::Gateway(_) => None,
        Holder::Unconfirmed => Some(owners.owners(*taken).await),
    };
    Err(Refusal {
        error,
        holder: Some(holder),
        owners,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::classify_bind_error;
    use crate::exit_code::ExitCode;
    use crate::identity::{GatewayIdentity, HealthReport};
    use crate::port_owner::{PortOwners, ProcessInfo};
    use async_trait::async_trait;
    use mockall::{Sequence, mock, predicate::eq};
    use std::io;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A listener that counts its drops, so tests can see the port released.
    #[derive(Debug)]
    struct FakeListener(Arc<AtomicUsize>);
    impl Drop for FakeListener {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    mock! {
        Binder {}
        #[async_trait]
        impl PortBinder for Binder {
            type Listener = FakeListener;
            async fn bind(&self, endpoint: Endpoint) -> Result<FakeListener, GatewayLockError>;
        }
    }

    mock! {
        Probe {}
        #[async_trait]
        impl HolderProbe for Probe {
            async fn identify(&self, endpoint: Endpoint) -> Holder;
        }
    }

    fn v4(port: u16) -> Endpoint {
        Endpoint::new("127.0.0.1".parse().unwrap(), port)
    }

    fn v6(port: u16) -> Endpoint {
        Endpoint::new("::1".parse().unwrap(), port)
    }

    fn in_use(endpoint: Endpoint) -> GatewayLockError {
        classify_bind_error(endpoint, io::Error::from(io::ErrorKind::AddrInUse))
    }

    fn a_gateway() -> Holder {
        Holder::Gateway(Box::new(HealthReport::live(
            &GatewayIdentity::fixture(1, 4000),
            10,
        )))
    }

    mock! {
        Owners {}
        #[async_trait]
        impl PortOwnerLookup for Owners {
            async fn owners(&self, endpoint: Endpoint) -> PortOwners;
            async fn freed_within(&self, endpoint: Endpoint, within: std::time::Duration) -> bool;
        }
    }

    fn no_lookup() -> MockOwners {
        let mut owners = MockOwners::new();
        owners.expect_owners().never();
        owners
    }

    fn no_probe() -> MockProbe {
        let mut probe = MockProbe::new();
        probe.expect_identify().never();
        probe
    }

    #[tokio::test]
    async fn binds_the_address_then_its_ipv6_companion() {
        let drops = Arc::new(AtomicUsize::new(0));
        let mut binder = MockBinder::new();
        let mut order = Sequence::new();
        let d = drops.clone();
        binder
            .expect_bind()
            .with(eq(v4(4000)))
            .once()
            .in_sequence(&mut order)
            .returning(move |_| Ok(FakeListener(d.clone())));
        let d = drops.clone();
        binder
            .expect_bind()
            .with(eq(v6(4000)))
            .once()
            .in_sequence(&mut order)
            .returning(move |_| Ok(FakeListener(d.clone())));
        let held = take_port_lock(&binder, &no_probe(), &no_lookup(), v4(4000), |_| {})
            .await
            .unwrap();
        assert_eq!(held.listeners.len(), 2);
        assert_eq!(drops.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn port_held_by_a_gateway_exits_78() {
        let mut binder = MockBinder::new();
        binder.expect_bind().returning(|e| Err(in_use(e)));
        let mut probe = MockProbe::new();
        probe
            .expect_identify()
            .with(eq(v4(4000)))
            .once()
            .returning(|_| a_gateway());
        let refusal = take_port_lock(&binder, &probe, &no_lookup(), v4(4000), |_| {})
            .await
            .unwrap_err();
        assert_eq!(refusal.exit_code(), ExitCode::Refused);
        assert_eq!(
            refusal.report_lines()[0],
            "GatewayLockError: another gateway instance is already listening on ws://127.0.0.1:4000"
        );
    }

    #[tokio::test]
    async fn the_refusal_is_announced_before_the_holder_is_probed() {
        let announced = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut binder = MockBinder::new();
        binder.expect_bind().returning(|e| Err(in_use(e)));
        let mut probe = MockProbe::new();
        let seen = announced.clone();
        probe.expect_identify().once().returning(move |_| {
            assert!(
                seen.load(Ordering::SeqCst),
                "probed before the first line was out"
            );
            a_gateway()
        });
        let flag = announced.clone();
        let refusal = take_port_lock(&binder, &probe, &no_lookup(), v4(4000), move |error| {
            assert!(matches!(error, GatewayLockError::AlreadyListening { .. }));
            flag.store(true, Ordering::SeqCst);
        })
        .await
        .unwrap_err();
        assert_eq!(refusal.exit_code(), ExitCode::Refused);
    }

    #[tokio::test]
    async fn port_held_by_something_else_exits_75() {
        let mut binder = MockBinder::new();
        binder.expect_bind().returning(|e| Err(in_use(e)));
        let mut probe = MockProbe::new();
        probe
            .expect_identify()
            .once()
            .returning(|_| Holder::Unconfirmed);
        let mut owners = MockOwners::new();
        owners
            .expect_owners()
            .with(eq(v4(4000)))
            .once()
            .returning(|_| {
                PortOwners::Visible(vec![ProcessInfo {
                    pid: 321,
                    program: Some("python3".into()),
                }])
            });
        let refusal = take_port_lock(&binder, &probe, &owners, v4(4000), |_| {})
            .await
            .unwrap_err();
        assert_eq!(refusal.exit_code(), ExitCode::PortHeld);
        assert_eq!(
            refusal.report_lines()[1],
            "  held by pid 321 (python3), which does not answer as a gateway"
        );
    }

    #[tokio::test]
    async fn other_bind_failures_exit_71_without_probing() {
        let mut binder = MockBinder::new();
        binder.expect_bind().returning(|e| {
            Err(classify_bind_error(
                e,
                io::Error::from(io::ErrorKind::PermissionDenied),
            ))
        });
        let refusal = take_port_lock(&binder, &no_probe(), &no_lookup(), v4(80), |_| {})
            .await
            .unwrap_err();
        assert_eq!(refusal.exit_code(), ExitCode::BindFailed);
        assert!(
            refusal.report_lines()[0].starts_with(
                "GatewayLockError: failed to bind gateway socket on ws://127.0.0.1:80: "
            )
        );
    }

    #[tokio::test]
    async fn a_held_ipv6_companion_is_a_conflict_and_releases_the_ipv4_listener() {
        let drops = Arc::new(AtomicUsize::new(0));
        let mut binder = MockBinder::new();
        let d = drops.clone();
        binder
            .expect_bind()
            .with(eq(v4(4000)))
            .returning(move |_| Ok(FakeListener(d.clone())));
        binder
            .expect_bind()
            .with(eq(v6(4000)))
            .returning(|e| Err(in_use(e)));
        let mut probe = MockProbe::new();
        probe
            .expect_identify()
            .with(eq(v6(4000)))
            .once()
            .returning(|_| Holder::Unconfirmed);
        let mut owners = MockOwners::new();
        owners
            .expect_owners()
            .with(eq(v6(4000)))
            .returning(|_| PortOwners::Hidden);
        let refusal = take_port_lock(&binder, &probe, &owners, v4(4000), |_| {})
            .await
            .unwrap_err();
        assert_eq!(refusal.exit_code(), ExitCode::PortHeld);
        assert_eq!(
            drops.load(Ordering::SeqCst),
            1,
            "the IPv4 listener was released"
        );
    }

    #[tokio::test]
    async fn a_host_without_ipv6_loopback_still_starts() {
        let mut binder = MockBinder::new();
        binder
            .expect_bind()
            .with(eq(v4(4000)))
            .returning(|_| Ok(FakeListener(Arc::default())));
        binder.expect_bind().with(eq(v6(4000))).returning(|e| {
            Err(classify_bind_error(
                e,
                io::Error::from(io::ErrorKind::AddrNotAvailable),
            ))
        });
        let held = take_port_lock(&binder, &no_probe(), &no_lookup(), v4(4000), |_| {})
            .await
            .unwrap();
        assert_eq!(held.listeners.len(), 1);
        assert!(held.ipv6_loopback_missing.is_some());
    }
}
