//! The start sequence's first and only pre-serving step: take the port lock, and when
//! it is refused, find out who holds it so the refusal earns the right exit code.

use gateway_domain::lock_policy::Refusal;
use gateway_domain::port_lock::{self, HeldPort};
use gateway_domain::{Endpoint, GatewayLockError, HolderProbe, PortBinder};

/// Binds `endpoint` (and its `[::1]` companion); on failure, probes the holder of an
/// address in use. Nothing stays bound when this returns `Err`.
pub async fn take_port_lock<B: PortBinder, P: HolderProbe>(
    binder: &B,
    probe: &P,
    endpoint: Endpoint,
) -> Result<HeldPort<B::Listener>, Refusal> {
    match port_lock::acquire(binder, endpoint).await {
        Ok(held) => Ok(held),
        Err(error) => {
            let holder = match &error {
                GatewayLockError::AlreadyListening { endpoint } => {
                    Some(probe.identify(*endpoint).await)
                }
                _ => None,
            };
            Err(Refusal { error, holder })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use gateway_domain::{ExitCode, GatewayIdentity, HealthReport, Holder};
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
        gateway_domain::classify_bind_error(endpoint, io::Error::from(io::ErrorKind::AddrInUse))
    }

    fn a_gateway() -> Holder {
        Holder::Gateway(HealthReport::live(
            &GatewayIdentity {
                pid: 1,
                port: 4000,
                profile: "default".into(),
                version: "0.1.0".into(),
            },
            10,
        ))
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
        let held = take_port_lock(&binder, &no_probe(), v4(4000))
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
        let refusal = take_port_lock(&binder, &probe, v4(4000)).await.unwrap_err();
        assert_eq!(refusal.exit_code(), ExitCode::Refused);
        assert_eq!(
            refusal.report_lines()[0],
            "GatewayLockError: another gateway instance is already listening on ws://127.0.0.1:4000"
        );
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
        let refusal = take_port_lock(&binder, &probe, v4(4000)).await.unwrap_err();
        assert_eq!(refusal.exit_code(), ExitCode::PortHeld);
    }

    #[tokio::test]
    async fn other_bind_failures_exit_71_without_probing() {
        let mut binder = MockBinder::new();
        binder.expect_bind().returning(|e| {
            Err(gateway_domain::classify_bind_error(
                e,
                io::Error::from(io::ErrorKind::PermissionDenied),
            ))
        });
        let refusal = take_port_lock(&binder, &no_probe(), v4(80))
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
        let refusal = take_port_lock(&binder, &probe, v4(4000)).await.unwrap_err();
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
            Err(gateway_domain::classify_bind_error(
                e,
                io::Error::from(io::ErrorKind::AddrNotAvailable),
            ))
        });
        let held = take_port_lock(&binder, &no_probe(), v4(4000))
            .await
            .unwrap();
        assert_eq!(held.listeners.len(), 1);
        assert!(held.ipv6_loopback_missing.is_some());
    }
}
