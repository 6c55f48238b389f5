//! What goes on the wire besides the API's own types: error bodies (`{"__type","Message"}`,
//! HTTP 400 for every modelled error), request ids, and the JSON 1.1 content type.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;
use keyroll_core::SmError;

pub const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// An error answered to a client: AWS's `__type`, its HTTP status and a message that never
/// contains a secret value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: Cow<'static, str>,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind: Cow::Borrowed(kind),
            message: message.into(),
        }
    }

    pub fn bad_request(kind: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, kind, message)
    }

    /// A request body that is not the operation's JSON.
    pub fn serialization(detail: impl std::fmt::Display) -> Self {
        Self::bad_request(
            "SerializationException",
            format!("Could not parse the request: {detail}"),
        )
    }

    pub fn unknown_operation(target: &str) -> Self {
        Self::bad_request(
            "UnknownOperationException",
            format!("The operation {target:?} is not a Secrets Manager operation."),
        )
    }

    pub fn body(&self) -> Bytes {
        let v = serde_json::json!({ "__type": self.kind, "Message": self.message });
        Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
    }
}

impl From<SmError> for ApiError {
    fn from(e: SmError) -> Self {
        let status = match e {
            SmError::InternalServiceError(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError {
            status,
            kind: Cow::Borrowed(e.aws_type()),
            message: e.message().to_string(),
        }
    }
}

static REQUEST_SEQ: AtomicU64 = AtomicU64::new(0);
static REQUEST_PREFIX: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

/// A request id shaped like AWS's (a UUID), unique within the process without a syscall per
/// request: a random per-process prefix and a counter.
pub fn request_id() -> String {
    let prefix = *REQUEST_PREFIX.get_or_init(|| {
        let mut b = [0u8; 8];
        let _ = getrandom::fill(&mut b);
        u64::from_le_bytes(b)
    });
    let n = REQUEST_SEQ.fetch_add(1, Ordering::Relaxed);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (prefix >> 32) as u32,
        (prefix >> 16) as u16,
        (prefix & 0xfff) as u16,
        (n >> 48) & 0xfff,
        n & 0xffff_ffff_ffff
    )
}

/// A JSON 1.1 response.
pub fn json_response(status: StatusCode, body: Bytes, request_id: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(JSON_CONTENT_TYPE),
    );
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-amzn-requestid", v);
    }
    r
}

/// An error response, with `x-amzn-ErrorType` like AWS.
pub fn error_response(e: &ApiError, request_id: &str) -> Response<Full<Bytes>> {
    let mut r = json_response(e.status, e.body(), request_id);
    if let Ok(v) = HeaderValue::from_str(&e.kind) {
        r.headers_mut().insert("x-amzn-errortype", v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_shape() {
        let e: ApiError = SmError::secret_not_found().into();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(v["__type"], "ResourceNotFoundException");
        assert_eq!(
            v["Message"],
            "Secrets Manager can't find the specified secret."
        );
    }

    #[test]
    fn request_ids_are_unique_uuid_shaped() {
        let a = request_id();
        let b = request_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(a.matches('-').count(), 4);
    }
}
