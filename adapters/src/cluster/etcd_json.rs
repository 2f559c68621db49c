//! The messages of etcd's v3 JSON gateway that the cluster lock uses, as serde types.
//!
//! The gateway maps the protobuf messages of `api/etcdserverpb/rpc.proto` to JSON the
//! protobuf way: `bytes` fields (keys, values) are base64, `int64` fields (revisions,
//! lease ids, TTLs) are JSON *strings*, and fields at their default (0, false, empty,
//! the first enum value such as `PUT`) are left out. Hence the `#[serde(default)]`
//! everywhere and the two `with` modules below.

use serde::{Deserialize, Serialize};

/// `LeaseGrantRequest`: `POST /v3/lease/grant`.
#[derive(Debug, Serialize)]
pub struct LeaseGrantRequest {
    #[serde(rename = "TTL", with = "int64")]
    pub ttl: i64,
}

/// `LeaseGrantResponse`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LeaseGrantResponse {
    #[serde(rename = "ID", with = "int64")]
    pub id: i64,
    #[serde(rename = "TTL", with = "int64")]
    pub ttl: i64,
    /// etcd reports some refusals in-band here rather than as an error status.
    pub error: String,
}

/// `LeaseKeepAliveRequest` and `LeaseRevokeRequest` (both only carry the id).
#[derive(Debug, Serialize)]
pub struct LeaseIdRequest {
    #[serde(rename = "ID", with = "int64")]
    pub id: i64,
}

/// `LeaseKeepAliveResponse`. A TTL of 0 (left out) means the lease is gone.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LeaseKeepAliveResponse {
    #[serde(rename = "ID", with = "int64")]
    pub id: i64,
    #[serde(rename = "TTL", with = "int64")]
    pub ttl: i64,
}

/// `LeaseRevokeResponse` (only a header, which nothing here reads).
#[derive(Debug, Default, Deserialize)]
pub struct LeaseRevokeResponse {}

/// `ResponseHeader`: the store's revision when the request was served.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ResponseHeader {
    #[serde(with = "int64")]
    pub revision: i64,
}

/// `KeyValue`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct KeyValue {
    #[serde(with = "base64")]
    pub key: Vec<u8>,
    #[serde(with = "int64")]
    pub create_revision: i64,
    #[serde(with = "int64")]
    pub mod_revision: i64,
    #[serde(with = "base64")]
    pub value: Vec<u8>,
    #[serde(with = "int64")]
    pub lease: i64,
}

/// `RangeRequest` for a single key: `POST /v3/kv/range`.
#[derive(Debug, Serialize)]
pub struct RangeRequest {
    #[serde(with = "base64")]
    pub key: Vec<u8>,
}

/// `RangeResponse`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RangeResponse {
    pub header: ResponseHeader,
    pub kvs: Vec<KeyValue>,
}

/// `PutRequest`.
#[derive(Debug, Serialize)]
pub struct PutRequest {
    #[serde(with = "base64")]
    pub key: Vec<u8>,
    #[serde(with = "base64")]
    pub value: Vec<u8>,
    #[serde(with = "int64")]
    pub lease: i64,
}

/// `Compare`, restricted to what the lock asks: the key's create revision.
#[derive(Debug, Serialize)]
pub struct Compare {
    #[serde(with = "base64")]
    pub key: Vec<u8>,
    /// `CompareTarget`: always `CREATE` here.
    pub target: &'static str,
    /// `CompareResult`: always `EQUAL` here.
    pub result: &'static str,
    #[serde(with = "int64")]
    pub create_revision: i64,
}

/// `RequestOp`: one of its variants, named as its oneof field.
#[derive(Debug, Serialize)]
pub enum RequestOp {
    #[serde(rename = "request_put")]
    Put(PutRequest),
    #[serde(rename = "request_range")]
    Range(RangeRequest),
}

/// `TxnRequest`: `POST /v3/kv/txn`.
#[derive(Debug, Serialize)]
pub struct TxnRequest {
    pub compare: Vec<Compare>,
    pub success: Vec<RequestOp>,
    pub failure: Vec<RequestOp>,
}

/// `ResponseOp`: only the range answer is read (the put's carries nothing needed).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ResponseOp {
    pub response_range: Option<RangeResponse>,
}

/// `TxnResponse`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TxnResponse {
    pub header: ResponseHeader,
    pub succeeded: bool,
    pub responses: Vec<ResponseOp>,
}

/// `WatchRequest` with its `create_request`: `POST /v3/watch`.
#[derive(Debug, Serialize)]
pub struct WatchRequest {
    pub create_request: WatchCreateRequest,
}

/// `WatchCreateRequest`: one key, from a revision on.
#[derive(Debug, Serialize)]
pub struct WatchCreateRequest {
    #[serde(with = "base64")]
    pub key: Vec<u8>,
    #[serde(with = "int64")]
    pub start_revision: i64,
}

/// `WatchResponse`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct WatchResponse {
    pub created: bool,
    /// The watch ended on etcd's side (e.g. its start revision was compacted).
    pub canceled: bool,
    pub events: Vec<Event>,
}

/// `mvccpb.Event`. Its `type` is left out for `PUT`, the enum's first value.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: String,
}

impl Event {
    pub fn is_delete(&self) -> bool {
        self.kind == "DELETE"
    }
}

/// One line of a streamed answer (`watch`, `lease/keepalive`): a message, or the
/// error that ended the stream.
#[derive(Debug, Deserialize)]
pub struct StreamLine<T> {
    pub result: Option<T>,
    pub error: Option<ErrorBody>,
}

/// An error answer: the body of a non-200 unary answer, or a stream line's `error`.
/// etcd 3.4's gateway writes `error` and `message` (and `grpc_code` in streams),
/// 3.5's `code` and `message`: every field is optional.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ErrorBody {
    /// The gRPC status code (5 is `NOT_FOUND`).
    #[serde(alias = "grpc_code")]
    pub code: i32,
    pub message: String,
    /// etcd 3.4 repeats the message here in unary answers.
    pub error: Option<serde_json::Value>,
}

impl ErrorBody {
    /// The message, whichever field carried it.
    pub fn text(&self) -> String {
        if !self.message.is_empty() {
            return self.message.clone();
        }
        match &self.error {
            Some(serde_json::Value::String(text)) => text.clone(),
            _ => format!("error code {}", self.code),
        }
    }
}

/// How an error answer stands towards this gateway's access to etcd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The auth token is no longer good (expired, or the auth store changed since it
    /// was issued): authenticate again and resend.
    StaleToken,
    /// etcd refuses this gateway: wrong user or password, a role without permission
    /// on the key, no user where one is needed. Waiting will not change it.
    Denied,
}

/// gRPC's `PERMISSION_DENIED` and `UNAUTHENTICATED`.
const GRPC_PERMISSION_DENIED: i32 = 7;
const GRPC_UNAUTHENTICATED: i32 = 16;

impl ErrorBody {
    /// Whether this error is about access rather than availability, from etcd's
    /// messages (`etcdserver: ...`, the same in 3.4 and 3.5) and gRPC codes.
    pub fn refusal(&self) -> Option<Refusal> {
        let text = self.text();
        let says = |words: &[&str]| words.iter().any(|w| text.contains(w));
        if says(&["invalid auth token", "revision of auth store is old"])
            || self.code == GRPC_UNAUTHENTICATED
        {
            return Some(Refusal::StaleToken);
        }
        let denied = [
            "authentication failed",
            "permission denied",
            "user name is empty",
            "user name not found",
            "authentication is not enabled",
            // etcd 3.4+, to a client certificate with a CN on its JSON gateway while
            // authentication is on (the CN would not be the user, as over gRPC).
            "CommonName of client sending a request against gateway",
        ];
        (says(&denied) || self.code == GRPC_PERMISSION_DENIED).then_some(Refusal::Denied)
    }
}

/// `AuthenticateRequest`: `POST /v3/auth/authenticate`. Never logged: it carries the
/// password.
#[derive(Serialize)]
pub struct AuthenticateRequest<'a> {
    pub name: &'a str,
    pub password: &'a str,
}

/// `AuthenticateResponse`: the token for the `Authorization` header.
#[derive(Default, Deserialize)]
#[serde(default)]
pub struct AuthenticateResponse {
    pub token: String,
}

/// `int64` as protobuf's JSON writes it (a string) and also as a number, which the
/// gateway accepts and some proxies produce.
mod int64 {
    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &i64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
        deserializer.deserialize_any(Int64)
    }

    struct Int64;

    impl Visitor<'_> for Int64 {
        type Value = i64;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an int64 as a string or a number")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<i64, E> {
            text.parse()
                .map_err(|_| E::invalid_value(de::Unexpected::Str(text), &self))
        }

        fn visit_i64<E: de::Error>(self, value: i64) -> Result<i64, E> {
            Ok(value)
        }

        fn visit_u64<E: de::Error>(self, value: u64) -> Result<i64, E> {
            i64::try_from(value)
                .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(value), &self))
        }
    }
}

/// `bytes` as protobuf's JSON writes it: standard base64 with padding.
mod base64 {
    use data_encoding::BASE64;
    use serde::de::{self, Deserialize};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&BASE64.encode(value))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        BASE64
            .decode(text.as_bytes())
            .map_err(|_| de::Error::invalid_value(de::Unexpected::Str(&text), &"base64"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_go_out_as_base64_and_int64s_as_strings() {
        let txn = TxnRequest {
            compare: vec![Compare {
                key: b"/gateway/lock/x".to_vec(),
                target: "CREATE",
                result: "EQUAL",
                create_revision: 0,
            }],
            success: vec![RequestOp::Put(PutRequest {
                key: b"/gateway/lock/x".to_vec(),
                value: b"{}".to_vec(),
                lease: 4_111_120_493_043_390_215,
            })],
            failure: vec![RequestOp::Range(RangeRequest {
                key: b"/gateway/lock/x".to_vec(),
            })],
        };
        assert_eq!(
            serde_json::to_string(&txn).unwrap(),
            r#"{"compare":[{"key":"L2dhdGV3YXkvbG9jay94","target":"CREATE","result":"EQUAL","create_revision":"0"}],"success":[{"request_put":{"key":"L2dhdGV3YXkvbG9jay94","value":"e30=","lease":"4111120493043390215"}}],"failure":[{"request_range":{"key":"L2dhdGV3YXkvbG9jay94"}}]}"#
        );
        assert_eq!(
            serde_json::to_string(&LeaseIdRequest { id: -1 }).unwrap(),
            r#"{"ID":"-1"}"#
        );
        assert_eq!(
            serde_json::to_string(&WatchRequest {
                create_request: WatchCreateRequest {
                    key: b"k".to_vec(),
                    start_revision: 3,
                }
            })
            .unwrap(),
            r#"{"create_request":{"key":"aw==","start_revision":"3"}}"#
        );
    }

    #[test]
    fn a_failed_txn_as_etcd_3_4_writes_it_is_read_with_the_holder_bytes() {
        // Captured from etcd 3.4.23; `succeeded: false` is left out.
        let body = r#"{"header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709","revision":"2","raft_term":"2"},"responses":[{"response_range":{"header":{"revision":"2"},"kvs":[{"key":"L2dhdGV3YXkvbG9jay94","create_revision":"2","mod_revision":"2","version":"1","value":"eyJ1cmwiOiJ3czovL2EiLCJwaWQiOjEsImhvc3RuYW1lIjoiaCJ9","lease":"4111120493043390215"}],"count":"1"}}]}"#;
        let txn: TxnResponse = serde_json::from_str(body).unwrap();
        assert!(!txn.succeeded);
        assert_eq!(txn.header.revision, 2);
        let range = txn.responses[0].response_range.as_ref().unwrap();
        let kv = &range.kvs[0];
        assert_eq!(kv.key, b"/gateway/lock/x");
        assert_eq!(kv.value, br#"{"url":"ws://a","pid":1,"hostname":"h"}"#);
        assert_eq!(kv.create_revision, 2);
        assert_eq!(kv.lease, 4_111_120_493_043_390_215);
    }

    #[test]
    fn int64s_are_read_from_strings_and_from_numbers() {
        let grant: LeaseGrantResponse =
            serde_json::from_str(r#"{"header":{"revision":"1"},"ID":"7587","TTL":10}"#).unwrap();
        assert_eq!((grant.id, grant.ttl), (7587, 10));
        let gone: StreamLine<LeaseKeepAliveResponse> =
            serde_json::from_str(r#"{"result":{"header":{"revision":"2"},"ID":"12345"}}"#).unwrap();
        assert_eq!(gone.result.unwrap().ttl, 0, "a left-out TTL is 0: gone");
        assert!(serde_json::from_str::<ResponseHeader>(r#"{"revision":"x"}"#).is_err());
    }

    #[test]
    fn watch_lines_tell_a_put_from_a_delete_and_see_a_cancel() {
        let put: StreamLine<WatchResponse> = serde_json::from_str(
            r#"{"result":{"header":{"revision":"3"},"events":[{"kv":{"key":"aw==","mod_revision":"3","value":"aGVsbG8="}}]}}"#,
        )
        .unwrap();
        assert!(!put.result.unwrap().events[0].is_delete());
        let delete: StreamLine<WatchResponse> = serde_json::from_str(
            r#"{"result":{"header":{"revision":"4"},"events":[{"type":"DELETE","kv":{"key":"aw==","mod_revision":"4"}}]}}"#,
        )
        .unwrap();
        assert!(delete.result.unwrap().events[0].is_delete());
        let canceled: StreamLine<WatchResponse> = serde_json::from_str(
            r#"{"result":{"header":{"raft_term":"2"},"canceled":true,"compact_revision":"5"}}"#,
        )
        .unwrap();
        assert!(canceled.result.unwrap().canceled);
    }

    #[test]
    fn access_errors_are_told_from_availability_errors() {
        let error = |body: &str| serde_json::from_str::<ErrorBody>(body).unwrap();
        let wrong_password = error(
            r#"{"error":"etcdserver: authentication failed, invalid user ID or password","message":"etcdserver: authentication failed, invalid user ID or password","code":3}"#,
        );
        assert_eq!(wrong_password.refusal(), Some(Refusal::Denied));
        let no_role = error(r#"{"message":"etcdserver: permission denied","code":7}"#);
        assert_eq!(no_role.refusal(), Some(Refusal::Denied));
        let no_user = error(r#"{"error":"etcdserver: user name is empty","code":3}"#);
        assert_eq!(no_user.refusal(), Some(Refusal::Denied));
        let expired = error(r#"{"message":"etcdserver: invalid auth token","code":3}"#);
        assert_eq!(expired.refusal(), Some(Refusal::StaleToken));
        let old = error(r#"{"error":"etcdserver: revision of auth store is old","code":3}"#);
        assert_eq!(old.refusal(), Some(Refusal::StaleToken));
        let common_name = ErrorBody {
            message: "HTTP 400 Bad Request: CommonName of client sending a request against gateway will be ignored and not used as expected".into(),
            ..ErrorBody::default()
        };
        assert_eq!(common_name.refusal(), Some(Refusal::Denied));
        let no_leader = error(r#"{"code":14,"message":"etcdserver: no leader"}"#);
        assert_eq!(no_leader.refusal(), None);
        let lease = error(r#"{"message":"etcdserver: requested lease not found","code":5}"#);
        assert_eq!(lease.refusal(), None);
    }

    #[test]
    fn errors_of_etcd_3_4_and_3_5_give_their_message_and_code() {
        let unary: ErrorBody = serde_json::from_str(
            r#"{"error":"etcdserver: requested lease not found","message":"etcdserver: requested lease not found","code":5}"#,
        )
        .unwrap();
        assert_eq!(unary.code, 5);
        assert_eq!(unary.text(), "etcdserver: requested lease not found");
        let newer: ErrorBody =
            serde_json::from_str(r#"{"code":14,"message":"etcdserver: no leader","details":[]}"#)
                .unwrap();
        assert_eq!(
            (newer.code, newer.text().as_str()),
            (14, "etcdserver: no leader")
        );
        let streamed: StreamLine<WatchResponse> = serde_json::from_str(
            r#"{"error":{"grpc_code":5,"http_code":404,"message":"etcdserver: requested lease not found","http_status":"Not Found"}}"#,
        )
        .unwrap();
        assert_eq!(streamed.error.unwrap().code, 5);
    }
}
