//! One way of delivering an event.

use async_trait::async_trait;

use crate::event::RotationEvent;

/// Why one delivery attempt failed. Messages name the channel's host, never a URL path,
/// a token or a password.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DeliveryError {
    /// Might pass on a later attempt (network, timeout, throttling, server error).
    #[error("{0}")]
    Transient(String),
    /// Will not pass by retrying (refused recipient, bad request, unknown topic).
    #[error("{0}")]
    Permanent(String),
}

impl DeliveryError {
    pub fn is_permanent(&self) -> bool {
        matches!(self, DeliveryError::Permanent(_))
    }
}

#[async_trait]
pub(crate) trait Deliver: Send + Sync {
    /// Where this channel delivers, for logs (`https://hooks.slack.com`, `smtp://host:587`).
    fn target(&self) -> String;

    async fn deliver(&self, event: &RotationEvent) -> Result<(), DeliveryError>;
}
