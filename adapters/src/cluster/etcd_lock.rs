//! The cluster lock on etcd's v3 API (`etcd-client`, gRPC).
//!
//! The lock is one key, `/gateway/lock/KEY`, created by a transaction "if the key's
//! create revision is 0 (absent), put it bound to my lease, else read it". This,
//! rather than etcd's `Lock` RPC, because the contract wants the exact key, a value
//! naming the holder (url, pid, host) and an immediate refusal that quotes it; the
//! `Lock` RPC creates `KEY/<lease>` with an empty value and blocks. A standby waits
//! with a watch on the key for its deletion. The fencing token is the key's create
//! revision: etcd's revision counter only grows, so a later holder's is larger.

use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, LeaseKeepAliveStream, LeaseKeeper,
    PutOptions, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use gateway_domain::cluster::{
    Acquisition, ClusterKey, ClusterLock, HeldLock, HolderRecord, LeaseId, LockFault,
};
use tokio::sync::Mutex;

/// How long a connection attempt to one endpoint may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// HTTP/2 pings on the gRPC connection, so a dead peer is noticed between requests.
const PING_INTERVAL: Duration = Duration::from_secs(1);

/// A client of one etcd cluster.
pub struct EtcdClusterLock {
    /// The gRPC client (cheap to clone: one balanced channel over the endpoints).
    client: Client,
    /// The endpoints as configured, for error messages.
    url: String,
    /// The open keep-alive stream of the held lease: one round trip per call, and
    /// reopened after any failure so a late answer is never taken for a new one.
    keeper: Mutex<Option<(LeaseKeeper, LeaseKeepAliveStream)>>,
}

impl EtcdClusterLock {
    /// A client for `endpoints` (`http://host:port`). Connects lazily: an
    /// unreachable cluster shows up at the first request, not here.
    pub async fn connect(endpoints: &[String]) -> Result<Self, LockFault> {
        let url = endpoints.join(",");
        let options = ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_keep_alive(PING_INTERVAL, CONNECT_TIMEOUT)
            .with_keep_alive_while_idle(true);
        let client = Client::connect(endpoints, Some(options))
            .await
            .map_err(|error| unreachable(&url, &error))?;
        Ok(Self {
            client,
            url,
            keeper: Mutex::new(None),
        })
    }

    fn fault(&self, error: &etcd_client::Error) -> LockFault {
        unreachable(&self.url, error)
    }

    fn timed_out(&self, patience: Duration) -> LockFault {
        LockFault::Unreachable {
            url: self.url.clone(),
            reason: format!("no answer within {} ms", patience.as_millis()),
        }
    }

    /// Runs `request` within `patience`, mapping both failures to `Unreachable`.
    async fn within<T>(
        &self,
        patience: Duration,
        request: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, LockFault> {
        match tokio::time::timeout(patience, request).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(self.fault(&error)),
            Err(_elapsed) => Err(self.timed_out(patience)),
        }
    }

    async fn revoke_quietly(&self, lease: i64, patience: Duration) {
        let mut client = self.client.clone();
        if let Err(error) = self.within(patience, client.lease_revoke(lease)).await {
            tracing::debug!(%error, lease, "could not revoke an unused lease; it will expire");
        }
    }
}

#[async_trait]
impl ClusterLock for EtcdClusterLock {
    async fn try_acquire(
        &self,
        key: &ClusterKey,
        ttl: Duration,
        holder: &HolderRecord,
    ) -> Result<Acquisition, LockFault> {
        let patience = ttl / 2;
        let path = key.lock_path();
        let value = serde_json::to_vec(holder).unwrap_or_default();
        let ttl_secs = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let mut client = self.client.clone();
        let lease = self
            .within(patience, client.lease_grant(ttl_secs, None))
            .await?
            .id();
        let txn = Txn::new()
            .when([Compare::create_revision(path.as_str(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                path.as_str(),
                value,
                Some(PutOptions::new().with_lease(lease)),
            )])
            .or_else([TxnOp::get(path.as_str(), None)]);
        let answer = match self.within(patience, client.txn(txn)).await {
            Ok(answer) => answer,
            Err(fault) => {
                self.revoke_quietly(lease, patience).await;
                return Err(fault);
            }
        };
        let revision = answer.header().map_or(0, |h| h.revision());
        if answer.succeeded() {
            return Ok(Acquisition::Acquired(HeldLock {
                lease: LeaseId(lease),
                fencing_token: u64::try_from(revision).unwrap_or(0),
            }));
        }
        self.revoke_quietly(lease, patience).await;
        let holder = answer.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(get) => get
                .kvs()
                .first()
                .and_then(|kv| serde_json::from_slice(kv.value()).ok()),
            _ => None,
        });
        Ok(Acquisition::HeldElsewhere { holder, revision })
    }

    async fn wait_for_release(
        &self,
        key: &ClusterKey,
        revision: i64,
        patience: Duration,
    ) -> Result<(), LockFault> {
        let mut client = self.client.clone();
        let options = WatchOptions::new().with_start_revision(revision + 1);
        let watch = async {
            let mut stream = client.watch(key.lock_path(), Some(options)).await?;
            while let Some(answer) = stream.message().await? {
                let deleted = answer
                    .events()
                    .iter()
                    .any(|event| event.event_type() == EventType::Delete);
                // A cancelled watch (compaction) also sends the caller back to try.
                if deleted || answer.canceled() {
                    break;
                }
            }
            Ok::<(), etcd_client::Error>(())
        };
        match tokio::time::timeout(patience, watch).await {
            Ok(Ok(())) | Err(_) => Ok(()),
            Ok(Err(error)) => Err(self.fault(&error)),
        }
    }

    async fn keep_alive(&self, lease: LeaseId, patience: Duration) -> Result<bool, LockFault> {
        let mut slot = self.keeper.lock().await;
        let round_trip = async {
            if slot.is_none() {
                *slot = Some(self.client.clone().lease_keep_alive(lease.0).await?);
            }
            let Some((keeper, stream)) = slot.as_mut() else {
                unreachable!("just filled")
            };
            keeper.keep_alive().await?;
            match stream.message().await? {
                Some(answer) => Ok(answer.ttl() > 0),
                None => Err(etcd_client::Error::LeaseKeepAliveError(
                    "keep-alive stream closed".to_owned(),
                )),
            }
        };
        let outcome = tokio::time::timeout(patience, round_trip).await;
        match outcome {
            Ok(Ok(alive)) => Ok(alive),
            Ok(Err(error)) => {
                *slot = None;
                Err(self.fault(&error))
            }
            Err(_elapsed) => {
                *slot = None;
                Err(self.timed_out(patience))
            }
        }
    }

    async fn confirm(
        &self,
        key: &ClusterKey,
        held: HeldLock,
        patience: Duration,
    ) -> Result<bool, LockFault> {
        let mut client = self.client.clone();
        let answer = self
            .within(patience, client.get(key.lock_path(), None))
            .await?;
        Ok(answer.kvs().first().is_some_and(|kv| {
            kv.lease() == held.lease.0
                && u64::try_from(kv.create_revision()).ok() == Some(held.fencing_token)
        }))
    }

    async fn release(&self, held: HeldLock, patience: Duration) -> Result<(), LockFault> {
        *self.keeper.lock().await = None;
        let mut client = self.client.clone();
        match tokio::time::timeout(patience, client.lease_revoke(held.lease.0)).await {
            Ok(Ok(_)) => Ok(()),
            // Already expired or revoked: the key is gone, which is what was asked.
            Ok(Err(etcd_client::Error::GRpcStatus(status)))
                if status.message().contains(LEASE_NOT_FOUND) =>
            {
                Ok(())
            }
            Ok(Err(error)) => Err(self.fault(&error)),
            Err(_elapsed) => Err(self.timed_out(patience)),
        }
    }
}

/// etcd's answer (`NOT_FOUND`) for a lease it no longer has.
const LEASE_NOT_FOUND: &str = "requested lease not found";

/// An etcd error as the contract's "cannot reach" fault: the error and its causes,
/// so "connection refused" shows rather than only "transport error".
fn unreachable(url: &str, error: &etcd_client::Error) -> LockFault {
    let (mut reason, mut source) = match error {
        etcd_client::Error::GRpcStatus(status) => (
            status.message().to_owned(),
            std::error::Error::source(status),
        ),
        other => (other.to_string(), std::error::Error::source(other)),
    };
    while let Some(cause) = source {
        let text = cause.to_string();
        if !reason.contains(&text) {
            reason.push_str(": ");
            reason.push_str(&text);
        }
        source = cause.source();
    }
    LockFault::Unreachable {
        url: url.to_owned(),
        reason,
    }
}
