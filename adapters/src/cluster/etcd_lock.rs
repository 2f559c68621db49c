//! The cluster lock on etcd's v3 API, through its JSON gateway (`POST /v3/...`).
//!
//! The lock is one key, `/gateway/lock/KEY`, created by a transaction "if the key's
//! create revision is 0 (absent), put it bound to my lease, else read it". This,
//! rather than etcd's `Lock` RPC, because docs/reference.md#cluster wants the exact key, a value
//! naming the holder (url, pid, host) and an immediate refusal that quotes it; the
//! `Lock` RPC creates `KEY/<lease>` with an empty value and blocks. A standby waits
//! with a watch on the key for its deletion. The fencing token is the key's create
//! revision: etcd's revision counter only grows, so a later holder's is larger.
//!
//! Why JSON over HTTP/1.1 and not gRPC: docs/architecture.md, "Decision: the etcd
//! client" (no `protoc` at build time, no HTTP/2 pings for etcd to call abusive).

use gateway_domain::ports::ClusterLock;
use std::time::Duration;

use async_trait::async_trait;
use gateway_domain::cluster::{
    Acquisition, ClusterKey, HeldLock, HolderRecord, LeaseId, LockFault,
};

use super::etcd_json::{
    Compare, LeaseGrantRequest, LeaseGrantResponse, LeaseIdRequest, LeaseKeepAliveResponse,
    LeaseRevokeResponse, PutRequest, RangeRequest, RangeResponse, RequestOp, TxnRequest,
    TxnResponse, WatchCreateRequest, WatchRequest, WatchResponse,
};
use super::etcd_transport::{EtcdAccess, Failure, Transport};

/// A client of one etcd cluster.
pub struct EtcdClusterLock {
    /// The endpoints and how to reach them.
    transport: Transport,
    /// The endpoints as configured, for error messages.
    url: String,
}

impl EtcdClusterLock {
    /// A client for `endpoints` (`http://host:port`, `https://host:port`), with
    /// the TLS settings and etcd user of `access`. Connects lazily: an unreachable
    /// or refusing cluster shows up at the first request, not here; a malformed
    /// endpoint does.
    pub async fn connect(endpoints: &[String], access: EtcdAccess) -> Result<Self, LockFault> {
        let url = endpoints.join(",");
        let transport =
            Transport::new(endpoints, access).map_err(|reason| LockFault::Unreachable {
                url: url.clone(),
                reason,
            })?;
        Ok(Self { transport, url })
    }

    /// A refusal (TLS, credentials, permissions) is `Unusable` at the endpoint that
    /// refused; anything else `Unreachable` at the endpoints as configured.
    fn fault(&self, failure: &Failure) -> LockFault {
        match failure {
            Failure::Refused { endpoint, reason } | Failure::StaleToken { endpoint, reason } => {
                LockFault::Unusable {
                    url: endpoint.clone(),
                    reason: reason.clone(),
                }
            }
            Failure::Transport(_) | Failure::Etcd(_) => LockFault::Unreachable {
                url: self.url.clone(),
                reason: failure.reason(),
            },
        }
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
        request: impl Future<Output = Result<T, Failure>>,
    ) -> Result<T, LockFault> {
        match tokio::time::timeout(patience, request).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(failure)) => Err(self.fault(&failure)),
            Err(_elapsed) => Err(self.timed_out(patience)),
        }
    }

    /// `lease/revoke`; a lease etcd no longer has counts as revoked.
    async fn revoke(&self, lease: i64) -> Result<(), Failure> {
        let revoked = self
            .transport
            .call::<_, LeaseRevokeResponse>("/v3/lease/revoke", &LeaseIdRequest { id: lease })
            .await;
        match revoked {
            Ok(_) => Ok(()),
            Err(Failure::Etcd(error))
                if error.code == GRPC_NOT_FOUND || error.text().contains(LEASE_NOT_FOUND) =>
            {
                Ok(())
            }
            Err(failure) => Err(failure),
        }
    }

    async fn revoke_quietly(&self, lease: i64, patience: Duration) {
        if let Err(error) = self.within(patience, self.revoke(lease)).await {
            tracing::debug!(%error, lease, "could not revoke an unused lease; it will expire");
        }
    }

    /// Reads a watch on `key` from `start_revision` until the key is deleted or etcd
    /// cancels the watch.
    async fn watch_for_delete(&self, key: &str, start_revision: i64) -> Result<(), Failure> {
        let request = WatchRequest {
            create_request: WatchCreateRequest {
                key: key.as_bytes().to_vec(),
                start_revision,
            },
        };
        let mut stream = self.transport.post("/v3/watch", &request).await?;
        while let Some(answer) = stream.next_line::<WatchResponse>().await? {
            // A cancelled watch (compaction) also sends the caller back to try.
            if answer.canceled || answer.events.iter().any(|event| event.is_delete()) {
                return Ok(());
            }
        }
        Err(Failure::Transport("the watch ended".to_owned()))
    }

    /// One `lease/keepalive`: its answer is a stream of one message.
    async fn keep_alive_once(&self, lease: i64) -> Result<bool, Failure> {
        let mut stream = self
            .transport
            .post("/v3/lease/keepalive", &LeaseIdRequest { id: lease })
            .await?;
        match stream.next_line::<LeaseKeepAliveResponse>().await? {
            Some(answer) => Ok(answer.ttl > 0),
            None => Err(Failure::Transport("keep-alive got no answer".to_owned())),
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
        let path = key.lock_path().into_bytes();
        let value = serde_json::to_vec(holder).unwrap_or_default();
        let ttl_secs = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let grant_request = LeaseGrantRequest { ttl: ttl_secs };
        let grant = self
            .transport
            .call::<_, LeaseGrantResponse>("/v3/lease/grant", &grant_request);
        let granted = self.within(patience, grant).await?;
        if !granted.error.is_empty() || granted.id == 0 {
            return Err(self.fault(&Failure::Transport(format!(
                "no lease granted: {}",
                granted.error
            ))));
        }
        let lease = granted.id;
        let txn = TxnRequest {
            compare: vec![Compare {
                key: path.clone(),
                target: "CREATE",
                result: "EQUAL",
                create_revision: 0,
            }],
            success: vec![RequestOp::Put(PutRequest {
                key: path.clone(),
                value,
                lease,
            })],
            failure: vec![RequestOp::Range(RangeRequest { key: path })],
        };
        let txn = self.transport.call::<_, TxnResponse>("/v3/kv/txn", &txn);
        let answer = match self.within(patience, txn).await {
            Ok(answer) => answer,
            Err(fault) => {
                self.revoke_quietly(lease, patience).await;
                return Err(fault);
            }
        };
        let revision = answer.header.revision;
        if answer.succeeded {
            return Ok(Acquisition::Acquired(HeldLock {
                lease: LeaseId(lease),
                fencing_token: u64::try_from(revision).unwrap_or(0),
            }));
        }
        self.revoke_quietly(lease, patience).await;
        let holder = answer
            .responses
            .into_iter()
            .filter_map(|op| op.response_range)
            .find_map(|range| {
                range
                    .kvs
                    .first()
                    .and_then(|kv| serde_json::from_slice(&kv.value).ok())
            });
        Ok(Acquisition::HeldElsewhere { holder, revision })
    }

    async fn wait_for_release(
        &self,
        key: &ClusterKey,
        revision: i64,
        patience: Duration,
    ) -> Result<(), LockFault> {
        let path = key.lock_path();
        let watch = self.watch_for_delete(&path, revision + 1);
        match tokio::time::timeout(patience, watch).await {
            Ok(Ok(())) | Err(_) => Ok(()),
            Ok(Err(failure)) => Err(self.fault(&failure)),
        }
    }

    async fn keep_alive(&self, lease: LeaseId, patience: Duration) -> Result<bool, LockFault> {
        self.within(patience, self.keep_alive_once(lease.0)).await
    }

    async fn confirm(
        &self,
        key: &ClusterKey,
        held: HeldLock,
        patience: Duration,
    ) -> Result<bool, LockFault> {
        let range = RangeRequest {
            key: key.lock_path().into_bytes(),
        };
        let answer = self
            .within(
                patience,
                self.transport
                    .call::<_, RangeResponse>("/v3/kv/range", &range),
            )
            .await?;
        Ok(answer.kvs.first().is_some_and(|kv| {
            kv.lease == held.lease.0
                && u64::try_from(kv.create_revision).ok() == Some(held.fencing_token)
        }))
    }

    async fn release(&self, held: HeldLock, patience: Duration) -> Result<(), LockFault> {
        // Already expired or revoked: the key is gone, which is what was asked.
        self.within(patience, self.revoke(held.lease.0)).await
    }
}

/// etcd's answer for a lease it no longer has (gRPC `NOT_FOUND`).
const LEASE_NOT_FOUND: &str = "requested lease not found";
const GRPC_NOT_FOUND: i32 = 5;
