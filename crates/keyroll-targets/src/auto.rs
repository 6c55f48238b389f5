//! A target chosen from the secret's `engine` the first time a step needs it — after the
//! engine's checks, so an event with nothing to do (a token already `AWSCURRENT`) or an
//! invalid one never reads the secret's value, and a secret no target can rotate fails the
//! step (recorded like any other failure) instead of the caller. The Lambda function and
//! `keyroll serve` rotate through it.

use async_trait::async_trait;
use keyroll_core::ports::{SharedTarget, StepContext, Target, TargetError};
use keyroll_core::value::SecretValue;

use crate::TargetConfig;
use tokio::sync::OnceCell;

/// Resolves to [`crate::resolve`]`(secret, AWSCURRENT value, config)` on first use.
pub struct AutoTarget {
    config: TargetConfig,
    resolved: OnceCell<SharedTarget>,
}

impl AutoTarget {
    pub fn new(config: TargetConfig) -> Self {
        AutoTarget {
            config,
            resolved: OnceCell::new(),
        }
    }

    async fn get(&self, ctx: &StepContext<'_>) -> Result<&SharedTarget, TargetError> {
        self.resolved
            .get_or_try_init(|| async {
                let current = ctx.current().await?;
                crate::resolve(ctx.description, &current.value, &self.config)
            })
            .await
    }
}

#[async_trait]
impl Target for AutoTarget {
    fn name(&self) -> &str {
        self.resolved.get().map_or("unresolved", |t| t.name())
    }
    async fn create(&self, ctx: &StepContext<'_>) -> Result<SecretValue, TargetError> {
        self.get(ctx).await?.create(ctx).await
    }
    async fn set(&self, ctx: &StepContext<'_>) -> Result<(), TargetError> {
        self.get(ctx).await?.set(ctx).await
    }
    async fn test(&self, ctx: &StepContext<'_>) -> Result<(), TargetError> {
        self.get(ctx).await?.test(ctx).await
    }
    async fn finish(&self, ctx: &StepContext<'_>) -> Result<(), TargetError> {
        self.get(ctx).await?.finish(ctx).await
    }
}
