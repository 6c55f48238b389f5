//! # keyroll-targets
//!
//! The systems that hold the credentials keyroll rotates, each a
//! [`keyroll_core::ports::Target`].
//!
//! # Layout
//!
//! - [`none`]: plain generated secrets (no external system).
//! - [`resolve`]: picks the target for a secret from its `engine` field.

pub mod none;

use std::sync::Arc;

use keyroll_core::api::DescribeSecretResponse;
use keyroll_core::ports::{SharedTarget, TargetError};
use keyroll_core::value::SecretValue;

/// Picks the target for a secret from the `engine` field of its current value: a value that
/// is not JSON, or has no `engine`, is a plain secret (target `none`).
pub fn resolve(
    desc: &DescribeSecretResponse,
    current: &SecretValue,
) -> Result<SharedTarget, TargetError> {
    let engine = current
        .json_object()
        .and_then(|o| o.get("engine").and_then(|e| e.as_str().map(str::to_string)));
    match engine.as_deref() {
        None => Ok(Arc::new(none::NoneTarget::new())),
        Some(e) => Err(TargetError::Misconfigured(format!(
            "secret {} has engine {e:?}, which keyroll cannot rotate; supported engines: none \
             (omit the field)",
            desc.name
        ))),
    }
}
