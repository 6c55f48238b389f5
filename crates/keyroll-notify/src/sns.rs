//! Amazon SNS: one `Publish` per event on a topic, with `MessageStructure=json` (the JSON
//! event by default, the e-mail text for e-mail subscriptions) and an `event` message
//! attribute for subscription filter policies. Credentials and endpoints come from the
//! standard AWS chain (`AWS_ENDPOINT_URL_SNS` / `AWS_ENDPOINT_URL` honoured).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_sdk_sns::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sns::types::MessageAttributeValue;
use tokio::sync::Mutex;

use crate::channel::{Deliver, DeliveryError};
use crate::event::RotationEvent;
use crate::format;

/// hyper 1 + rustls on *ring* (keyroll's one TLS stack) for the AWS SDK, instead of its
/// default client's aws-lc-rs.
pub fn https_client() -> aws_sdk_sns::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// SNS clients by (region, endpoint), built on first use.
#[derive(Default)]
pub(crate) struct SnsClients {
    clients: Mutex<HashMap<(String, Option<String>), aws_sdk_sns::Client>>,
}

impl SnsClients {
    async fn client(&self, region: &str, endpoint: Option<&str>) -> aws_sdk_sns::Client {
        let key = (region.to_string(), endpoint.map(str::to_string));
        let mut clients = self.clients.lock().await;
        if let Some(c) = clients.get(&key) {
            return c.clone();
        }
        // keyroll retries deliveries itself (bounded, with backoff): one SDK attempt each.
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_string()))
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .http_client(https_client());
        if let Some(e) = endpoint {
            loader = loader.endpoint_url(e);
        }
        let client = aws_sdk_sns::Client::new(&loader.load().await);
        clients.insert(key, client.clone());
        client
    }
}

pub(crate) struct Sns {
    pub(crate) topic_arn: String,
    pub(crate) region: String,
    pub(crate) endpoint: Option<String>,
    pub(crate) timeout: Duration,
    pub(crate) clients: Arc<SnsClients>,
}

fn attribute(v: &str) -> Option<MessageAttributeValue> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(v)
        .build()
        .ok()
}

#[async_trait]
impl Deliver for Sns {
    fn target(&self) -> String {
        self.topic_arn.clone()
    }

    async fn deliver(&self, event: &RotationEvent) -> Result<(), DeliveryError> {
        let client = self
            .clients
            .client(&self.region, self.endpoint.as_deref())
            .await;
        let mut req = client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(format::sns_subject(event))
            .message_structure("json")
            .message(format::sns_message(event));
        if let Some(a) = attribute(event.event.as_str()) {
            req = req.message_attributes("event", a);
        }
        if let Some(a) = attribute(&event.secret_name) {
            req = req.message_attributes("secretName", a);
        }
        let sent = tokio::time::timeout(self.timeout, req.send()).await;
        let what = format!("SNS Publish to {}", self.topic_arn);
        match sent {
            Err(_) => Err(DeliveryError::Transient(format!(
                "{what}: no answer within {}s",
                self.timeout.as_secs()
            ))),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                let text = format!("{what}: {}", DisplayErrorContext(&e));
                let transient = match &e {
                    SdkError::ServiceError(se) => matches!(
                        se.err().code(),
                        Some(
                            "Throttling"
                                | "ThrottlingException"
                                | "ThrottledException"
                                | "InternalError"
                                | "InternalFailure"
                                | "ServiceUnavailable"
                                | "KMSThrottling"
                        )
                    ),
                    SdkError::ConstructionFailure(_) => false,
                    _ => true,
                };
                if transient {
                    Err(DeliveryError::Transient(text))
                } else {
                    Err(DeliveryError::Permanent(text))
                }
            }
        }
    }
}
