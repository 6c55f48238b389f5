//! Webhooks: an HTTP POST of the event as JSON, or as a Slack-compatible message.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};

use crate::channel::{Deliver, DeliveryError};
use crate::config::{NotifyConfigError, WebhookConfig, WebhookFormat, url_origin};
use crate::event::RotationEvent;
use crate::format;

pub(crate) struct Webhook {
    client: reqwest::Client,
    url: SecretString,
    origin: String,
    format: WebhookFormat,
    headers: HeaderMap,
}

/// Reads a PEM bundle of CA certificates for an HTTP client.
pub(crate) fn ca_certificates(
    path: &std::path::Path,
    channel: &str,
) -> Result<Vec<reqwest::Certificate>, NotifyConfigError> {
    let pem = std::fs::read(path).map_err(|e| NotifyConfigError::Channel {
        channel: channel.into(),
        message: format!("cannot read ca_file {}: {e}", path.display()),
    })?;
    let certs =
        reqwest::Certificate::from_pem_bundle(&pem).map_err(|_| NotifyConfigError::Channel {
            channel: channel.into(),
            message: format!("ca_file {} holds no PEM certificate", path.display()),
        })?;
    if certs.is_empty() {
        return Err(NotifyConfigError::Channel {
            channel: channel.into(),
            message: format!("ca_file {} holds no PEM certificate", path.display()),
        });
    }
    Ok(certs)
}

/// A reqwest error as text without the URL (webhook URLs carry tokens).
pub(crate) fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut s = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(&e);
    while let Some(inner) = source {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        source = inner.source();
    }
    s
}

impl Webhook {
    pub(crate) fn new(c: &WebhookConfig, name: &str) -> Result<Self, NotifyConfigError> {
        let timeout = Duration::from_secs(c.timeout_secs);
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("keyroll/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &c.ca_file {
            builder = builder.tls_built_in_root_certs(false);
            for cert in ca_certificates(path, name)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder.build().map_err(|e| NotifyConfigError::Channel {
            channel: name.into(),
            message: format!("cannot build the HTTP client: {}", describe(e)),
        })?;
        let mut headers = HeaderMap::new();
        for (k, v) in &c.headers {
            let key =
                HeaderName::from_bytes(k.as_bytes()).map_err(|_| NotifyConfigError::Channel {
                    channel: name.into(),
                    message: format!("header name {k:?} is not valid"),
                })?;
            let mut value = HeaderValue::from_str(v.expose_secret()).map_err(|_| {
                NotifyConfigError::Channel {
                    channel: name.into(),
                    message: format!("the value of header {k} is not a valid header value"),
                }
            })?;
            value.set_sensitive(true);
            headers.insert(key, value);
        }
        Ok(Webhook {
            client,
            origin: url_origin(c.url.expose_secret()),
            url: c.url.clone(),
            format: c.format,
            headers,
        })
    }
}

#[async_trait]
impl Deliver for Webhook {
    fn target(&self) -> String {
        self.origin.clone()
    }

    async fn deliver(&self, event: &RotationEvent) -> Result<(), DeliveryError> {
        let body = match self.format {
            WebhookFormat::Json => event.to_json(),
            WebhookFormat::Slack => format::slack_payload(event),
        };
        let resp = self
            .client
            .post(self.url.expose_secret())
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, "application/json")
            .header("X-Keyroll-Event", event.event.as_str())
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| {
                DeliveryError::Transient(format!("POST {}: {}", self.origin, describe(e)))
            })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let msg = format!("POST {} answered HTTP {status}", self.origin);
        // Throttling, timeouts and server errors may pass; other answers will not change.
        if status.as_u16() == 429 || status.as_u16() == 408 || status.is_server_error() {
            Err(DeliveryError::Transient(msg))
        } else {
            Err(DeliveryError::Permanent(msg))
        }
    }
}
