//! The start sequence's first and only pre-serving step: take the port lock, and when
//! it is refused, find out who holds it so the refusal earns the right exit code.

use std::path::Path;

use gateway_domain::lock_policy::Refusal;
use gateway_domain::port_lock::{self, HeldPort};
use gateway_domain::port_owner::PortOwnerLookup;
use gateway_domain::profile::{LockRecord, ProfileLocker, ProfileName};
use gateway_domain::{Endpoint, GatewayLockError, Holder, HolderProbe, PortBinder};

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
    let error = match port_lock::acquire(binder, endpoint).await {
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
        Holder::Unconfirmed => Some(owners.owners(*taken)),
    };
    Err(Refusal {
        error,
        holder: Some(holder),
        owners,
    })
}

/// Takes the profile's lock, once the port is held. A refusal carries the
/// contract's `profile "NAME" is already in use ...` line.
pub fn take_profile_lock<L: ProfileLocker>(
    locker: &L,
    profile: &ProfileName,
    state_dir: &Path,
    record: &LockRecord,
) -> Result<L::Guard, Refusal> {
    locker
        .acquire(state_dir, record)
        .map_err(|failure| Refusal {
            error: failure.into_lock_error(profile),
            holder: None,
            owners: None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use gateway_domain::port_owner::{PortOwners, ProcessInfo};
    use gateway_domain::profile::ProfileLockFailure;
    use gateway_domain::{ExitCode, GatewayIdentity, HealthReport};
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

    mock! {
        Locker {}
        impl ProfileLocker for Locker {
            type Guard = ();
            fn acquire(&self, dir: &Path, record: &LockRecord) -> Result<(), ProfileLockFailure>;
            fn current_holder(&self, dir: &Path) -> Option<LockRecord>;
        }
    }

    fn record() -> LockRecord {
        LockRecord {
            pid: 99,
            url: "ws://127.0.0.1:4001".into(),
            port: 4001,
            started_unix_ms: 0,
        }
    }

    fn profile() -> ProfileName {
        ProfileName::parse("work").unwrap()
    }

    #[test]
    fn a_free_profile_is_locked_in_its_state_dir() {
        let mut locker = MockLocker::new();
        locker
            .expect_acquire()
            .withf(|dir, record| dir == Path::new("/state/work") && record.pid == 99)
            .once()
            .returning(|_, _| Ok(()));
        assert!(
            take_profile_lock(&locker, &profile(), Path::new("/state/work"), &record()).is_ok()
        );
    }

    #[test]
    fn a_profile_held_by_another_gateway_exits_78_naming_it() {
        let mut locker = MockLocker::new();
        locker.expect_acquire().returning(|_, _| {
            Err(ProfileLockFailure::Held {
                holder: Some(LockRecord {
                    pid: 4242,
                    url: "ws://127.0.0.1:5000".into(),
                    port: 5000,
                    started_unix_ms: 0,
                }),
            })
        });
        let refusal =
            take_profile_lock(&locker, &profile(), Path::new("/s"), &record()).unwrap_err();
        assert_eq!(refusal.exit_code(), ExitCode::Refused);
        let lines = refusal.report_lines();
        assert_eq!(
            lines[0],
            "GatewayLockError: profile \"work\" is already in use by the gateway on ws://127.0.0.1:5000 (pid 4242)"
        );
        assert!(
            lines[1].contains("gateway stop --port 5000"),
            "{}",
            lines[1]
        );
    }

    #[test]
    fn an_unusable_state_dir_is_a_runtime_failure() {
        let mut locker = MockLocker::new();
        locker.expect_acquire().returning(|dir, _| {
            Err(ProfileLockFailure::Unavailable {
                path: dir.to_path_buf(),
                source: io::Error::from(io::ErrorKind::PermissionDenied),
            })
        });
        let refusal =
            take_profile_lock(&locker, &profile(), Path::new("/s"), &record()).unwrap_err();
        assert_eq!(refusal.exit_code(), ExitCode::RuntimeFailure);
        assert!(
            refusal.report_lines()[0]
                .starts_with("GatewayLockError: cannot lock profile \"work\" at /s: ")
        );
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
        Holder::Gateway(Box::new(HealthReport::live(
            &GatewayIdentity {
                pid: 1,
                port: 4000,
                profile: "default".into(),
                version: "0.1.0".into(),
            },
            10,
        )))
    }

    mock! {
        Owners {}
        impl PortOwnerLookup for Owners {
            fn owners(&self, endpoint: Endpoint) -> PortOwners;
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
            Err(gateway_domain::classify_bind_error(
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
            Err(gateway_domain::classify_bind_error(
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
