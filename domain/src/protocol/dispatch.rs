//! Routing a connected client's request to a method, or to the error it earns.

use serde::Serialize;

use super::frame::{self, ErrorCode};

/// The methods a connected client may call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Health,
    Status,
}

/// A request routed to a method, with the id its response must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub id: String,
    pub method: Method,
}

/// Routes one text frame. `Err` holds the complete error response to send; the
/// connection stays open either way.
pub fn route(text: &str) -> Result<Call, String> {
    let request = frame::parse_request(text).map_err(|invalid| {
        frame::error_response(
            invalid.id.as_deref(),
            ErrorCode::InvalidRequest,
            invalid.message,
        )
    })?;
    let method = match request.method.as_str() {
        "health" => Method::Health,
        "status" => Method::Status,
        "connect" => {
            return Err(frame::error_response(
                Some(&request.id),
                ErrorCode::InvalidRequest,
                "already connected",
            ));
        }
        other => {
            return Err(frame::error_response(
                Some(&request.id),
                ErrorCode::UnknownMethod,
                &format!("unknown method \"{other}\""),
            ));
        }
    };
    Ok(Call {
        id: request.id,
        method,
    })
}

/// The `status` method's payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    pub connections: usize,
    pub uptime_ms: u64,
    pub port: u16,
    pub profile: String,
    pub version: String,
    pub draining: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_methods_are_routed() {
        let call = route(r#"{"type":"req","id":"1","method":"status","params":{}}"#).unwrap();
        assert_eq!(call.method, Method::Status);
        assert_eq!(call.id, "1");
    }

    #[test]
    fn unknown_methods_get_unknown_method() {
        let err = route(r#"{"type":"req","id":"2","method":"reboot"}"#).unwrap_err();
        assert!(err.contains(r#""id":"2""#) && err.contains(r#""code":"unknown_method""#));
    }

    #[test]
    fn garbage_gets_invalid_request_with_null_id() {
        let err = route("{{{").unwrap_err();
        assert!(err.contains(r#""id":null"#) && err.contains(r#""code":"invalid_request""#));
    }

    proptest! {
        #[test]
        fn every_error_answer_is_a_json_response(text in "\\PC{0,120}") {
            if let Err(answer) = route(&text) {
                let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
                prop_assert_eq!(v["type"].as_str(), Some("res"));
                prop_assert_eq!(v["ok"].as_bool(), Some(false));
            }
        }
    }
}
