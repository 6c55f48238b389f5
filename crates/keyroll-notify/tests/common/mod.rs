//! Shared set-up: receivers, a sleeper that records instead of waiting, and secrets whose
//! rotations really ran (engine over the in-memory store) to build events from.
#![allow(dead_code)]

pub mod http;
pub mod smtp;

use std::sync::Arc;

use keyroll_core::api::{DescribeSecretResponse, SecretIdRequest};
use keyroll_core::engine::{RotateOptions, Silent, rotate};
use keyroll_core::memory::{MemoryBackend, memory_service};
use keyroll_core::model::Step;
use keyroll_core::ports::SecretsApi;
use keyroll_core::service::SecretsService;
pub use keyroll_core::testing::RecordingSleeper;
use keyroll_core::testing::{CounterTarget, FlakyTarget, rotatable_secret};
use keyroll_notify::RotationEvent;

/// A value no payload may ever contain.
pub const SENTINEL: &str = "SENTINEL-7d1f0c9e-never-in-a-payload";

pub fn sleeper() -> Arc<RecordingSleeper> {
    Arc::new(RecordingSleeper::default())
}

pub struct Rotated {
    pub svc: SecretsService<MemoryBackend>,
    pub arn: String,
}

impl Rotated {
    pub async fn describe(&self) -> DescribeSecretResponse {
        self.svc
            .describe_secret(SecretIdRequest {
                secret_id: self.arn.clone(),
            })
            .await
            .unwrap()
    }
}

/// A secret holding SENTINEL, rotated for real: once successfully, then (when `fail_at`)
/// once more failing at that step.
pub async fn rotated_secret(name: &str, tags: &[(&str, &str)], fail_at: Option<Step>) -> Rotated {
    let svc = memory_service();
    let rules = serde_json::from_value(serde_json::json!({"AutomaticallyAfterDays": 30})).unwrap();
    let value = format!("{{\"password\":\"{SENTINEL}\"}}");
    let arn = rotatable_secret(&svc, name, &value, tags, Some(rules))
        .await
        .unwrap();
    let target = FlakyTarget::new(CounterTarget::default());
    rotate(&svc, &target, &arn, &RotateOptions::default(), &Silent)
        .await
        .unwrap();
    if let Some(step) = fail_at {
        target.fail_before(step, 1);
        rotate(&svc, &target, &arn, &RotateOptions::default(), &Silent)
            .await
            .unwrap_err();
    }
    Rotated { svc, arn }
}

/// The event recorded on a secret after its last rotation.
pub async fn event_of(r: &Rotated) -> RotationEvent {
    RotationEvent::from_rotation_status(&r.describe().await)
        .expect("a finished rotation is recorded")
        .with_source("test")
}
