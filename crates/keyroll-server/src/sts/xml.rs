//! STS responses as AWS writes them (query protocol, XML in the
//! `https://sts.amazonaws.com/doc/2011-06-15/` namespace) and its `ErrorResponse` with AWS's
//! codes and HTTP statuses, so botocore and the SDKs parse both.

use std::borrow::Cow;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;
use secrecy::ExposeSecret;

use crate::credentials::AccessKey;
use crate::sigv4::AuthError;

pub const NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
pub const XML_CONTENT_TYPE: &str = "text/xml";

/// Escapes text for an XML element or attribute.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.contains(['&', '<', '>', '"', '\'']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Appends `<name>text</name>`.
pub fn element(out: &mut String, name: &str, text: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    out.push_str(&escape(text));
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

/// `2026-12-07T04:05:06Z`, as STS writes `Expiration`.
pub fn iso8601(epoch_secs: i64) -> String {
    chrono::DateTime::from_timestamp(epoch_secs, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// `<Credentials>` of temporary credentials. The only place a secret key or session token
/// is written out.
pub fn credentials(out: &mut String, key: &AccessKey, expiration: i64) {
    out.push_str("<Credentials>");
    element(out, "AccessKeyId", &key.access_key_id);
    element(
        out,
        "SecretAccessKey",
        key.secret_access_key.expose_secret(),
    );
    if let Some(t) = &key.session_token {
        element(out, "SessionToken", t.expose_secret());
    }
    element(out, "Expiration", &iso8601(expiration));
    out.push_str("</Credentials>");
}

/// A whole successful response: `<ACTIONResponse><ACTIONResult>…</ACTIONResult>
/// <ResponseMetadata><RequestId>…</RequestId></ResponseMetadata></ACTIONResponse>`.
pub fn success(action: &str, result: &str, request_id: &str) -> String {
    let mut out = String::with_capacity(result.len() + 256);
    out.push('<');
    out.push_str(action);
    out.push_str("Response xmlns=\"");
    out.push_str(NAMESPACE);
    out.push_str("\">\n  <");
    out.push_str(action);
    out.push_str("Result>");
    out.push_str(result);
    out.push_str("</");
    out.push_str(action);
    out.push_str("Result>\n  <ResponseMetadata>");
    element(&mut out, "RequestId", request_id);
    out.push_str("</ResponseMetadata>\n</");
    out.push_str(action);
    out.push_str("Response>\n");
    out
}

/// An STS error: AWS's code, HTTP status and message (which never carries a credential).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct StsError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// `Sender` (the caller's fault) or `Receiver` (the server's).
    pub sender: bool,
}

impl StsError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        StsError {
            status,
            code,
            message: message.into(),
            sender: !status.is_server_error(),
        }
    }

    pub fn access_denied(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "AccessDenied", message)
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "ValidationError", message)
    }

    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidParameterValue", message)
    }

    pub fn missing_parameter(name: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "MissingParameter",
            format!("The request must contain the parameter {name}"),
        )
    }

    pub fn invalid_action(action: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "InvalidAction",
            format!(
                "Could not find operation {action} for version 2011-06-15 (keyroll's STS \
                 answers GetCallerIdentity, GetSessionToken and AssumeRole)"
            ),
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailure",
            message,
        )
    }

    /// `<ErrorResponse>`.
    pub fn body(&self, request_id: &str) -> String {
        let mut out = String::with_capacity(256 + self.message.len());
        out.push_str("<ErrorResponse xmlns=\"");
        out.push_str(NAMESPACE);
        out.push_str("\">\n  <Error>");
        element(
            &mut out,
            "Type",
            if self.sender { "Sender" } else { "Receiver" },
        );
        element(&mut out, "Code", self.code);
        element(&mut out, "Message", &self.message);
        out.push_str("</Error>\n  ");
        element(&mut out, "RequestId", request_id);
        out.push_str("\n</ErrorResponse>\n");
        out
    }

    pub fn response(&self, request_id: &str) -> Response<Full<Bytes>> {
        xml_response(self.status, self.body(request_id), request_id)
    }
}

/// SigV4 failures as STS names them.
impl From<AuthError> for StsError {
    fn from(e: AuthError) -> Self {
        let (status, code) = match &e {
            AuthError::Missing(_) => (StatusCode::FORBIDDEN, "MissingAuthenticationToken"),
            AuthError::Incomplete(_) => (StatusCode::BAD_REQUEST, "IncompleteSignature"),
            AuthError::Invalid(_) => (StatusCode::FORBIDDEN, "SignatureDoesNotMatch"),
            AuthError::Unrecognized(_) => (StatusCode::FORBIDDEN, "InvalidClientTokenId"),
            AuthError::Expired(_) => (StatusCode::FORBIDDEN, "ExpiredToken"),
        };
        let message = match e {
            AuthError::Missing(m)
            | AuthError::Incomplete(m)
            | AuthError::Invalid(m)
            | AuthError::Unrecognized(m)
            | AuthError::Expired(m) => m,
        };
        StsError::new(status, code, message)
    }
}

/// An XML response with AWS's request id header.
pub fn xml_response(status: StatusCode, body: String, request_id: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(XML_CONTENT_TYPE),
    );
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-amzn-requestid", v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    #[test]
    fn success_and_error_shapes() {
        let mut r = String::new();
        element(&mut r, "Arn", "arn:aws:iam::000000000000:user/a&b");
        let x = success("GetCallerIdentity", &r, "rid-1");
        assert!(x.starts_with(
            "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
        ));
        assert!(x.contains(
            "<GetCallerIdentityResult><Arn>arn:aws:iam::000000000000:user/a&amp;b</Arn>\
             </GetCallerIdentityResult>"
        ));
        assert!(x.contains("<ResponseMetadata><RequestId>rid-1</RequestId></ResponseMetadata>"));
        let e = StsError::access_denied("User: x is not <authorized>");
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        let b = e.body("rid-2");
        assert!(b.contains(
            "<Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: x is not \
             &lt;authorized&gt;</Message></Error>"
        ));
        assert!(b.contains("<RequestId>rid-2</RequestId>"));
        assert!(!StsError::internal("x").body("r").contains("Sender"));
        let resp = e.response("rid-2");
        assert_eq!(resp.headers()["content-type"], "text/xml");
        assert_eq!(resp.headers()["x-amzn-requestid"], "rid-2");
    }

    #[test]
    fn credentials_and_dates() {
        assert_eq!(iso8601(1_700_000_000), "2023-11-14T22:13:20Z");
        let key = AccessKey {
            access_key_id: "ASIAAAAAAAAAAAAAAAAA".into(),
            secret_access_key: SecretString::from("s/+"),
            session_token: Some(SecretString::from("t<")),
            name: "x".into(),
        };
        let mut out = String::new();
        credentials(&mut out, &key, 1_700_000_000);
        assert_eq!(
            out,
            "<Credentials><AccessKeyId>ASIAAAAAAAAAAAAAAAAA</AccessKeyId><SecretAccessKey>s/+\
             </SecretAccessKey><SessionToken>t&lt;</SessionToken><Expiration>\
             2023-11-14T22:13:20Z</Expiration></Credentials>"
        );
    }

    #[test]
    fn auth_errors_keep_their_message_under_sts_codes() {
        let e: StsError = AuthError::Expired("expired".into()).into();
        assert_eq!((e.code, e.message.as_str()), ("ExpiredToken", "expired"));
        let e: StsError = AuthError::Unrecognized("x".into()).into();
        assert_eq!(e.code, "InvalidClientTokenId");
    }
}
