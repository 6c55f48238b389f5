//! `--store aws`: `keyroll secret …` and `keyroll rotate` against AWS Secrets Manager.
//!
//! The client takes its credentials, region and endpoint from the standard AWS
//! configuration (environment, `~/.aws/config` and `credentials`, SSO, container and instance
//! roles); `--region` overrides the region, and `AWS_ENDPOINT_URL` /
//! `AWS_ENDPOINT_URL_SECRETS_MANAGER` the endpoint.
//!
//! `keyroll rotate --store aws` runs keyroll's orchestrator from this machine, for targets a
//! Lambda cannot reach (on-premises databases, private networks): the four steps, then the
//! clean-up of `AWSPENDING`. It needs neither a rotation Lambda nor `RotationEnabled`, and it
//! does not change the secret's rotation configuration. What differs from the service's own
//! rotation (placeholder, `LastRotatedDate`, status) is documented in
//! `keyroll_store::aws` and `docs/DEPLOY.md`.

use crate::output::Format;
use crate::rotate::RotateArgs;
use crate::secret::SecretCmd;

#[cfg(feature = "aws")]
pub use imp::{open_store, rotate, secret};

#[cfg(not(feature = "aws"))]
fn not_built() -> anyhow::Error {
    anyhow::Error::new(crate::UsageError(
        "this keyroll was built without AWS support; rebuild with the `aws` feature (on by \
         default) or use --store embedded"
            .into(),
    ))
}

#[cfg(not(feature = "aws"))]
pub async fn open_store(
    _region: Option<String>,
    _endpoint_url: Option<String>,
) -> anyhow::Result<std::sync::Arc<dyn keyroll_core::ports::RotationStore>> {
    Err(not_built())
}

#[cfg(not(feature = "aws"))]
pub async fn secret(
    _cmd: SecretCmd,
    _region: Option<String>,
    _endpoint_url: Option<String>,
    _format: Format,
) -> anyhow::Result<()> {
    Err(not_built())
}

#[cfg(not(feature = "aws"))]
pub async fn rotate(
    _args: RotateArgs,
    _region: Option<String>,
    _endpoint_url: Option<String>,
    _format: Format,
) -> anyhow::Result<()> {
    Err(not_built())
}

#[cfg(feature = "aws")]
mod imp {
    use keyroll_core::api::SecretIdRequest;
    use keyroll_core::ports::{RotationStore, SecretsApi as _};
    use keyroll_store::aws::{AwsOptions, AwsStore};

    use super::*;

    async fn open(
        region: Option<String>,
        endpoint_url: Option<String>,
    ) -> anyhow::Result<AwsStore> {
        let store = AwsStore::connect(AwsOptions {
            region,
            endpoint_url,
        })
        .await;
        if store.region().is_none() {
            anyhow::bail!(crate::UsageError(
                "no AWS region is configured: pass --region, set AWS_REGION, or set `region` \
                 in your AWS profile"
                    .into()
            ));
        }
        Ok(store)
    }

    /// The store for `keyroll report`, `doctor` and fleet rotation with `--store aws` or
    /// `--endpoint-url`.
    pub async fn open_store(
        region: Option<String>,
        endpoint_url: Option<String>,
    ) -> anyhow::Result<std::sync::Arc<dyn RotationStore>> {
        Ok(std::sync::Arc::new(open(region, endpoint_url).await?))
    }

    /// `keyroll secret … --store aws`: the same commands, sent to Secrets Manager.
    pub async fn secret(
        cmd: SecretCmd,
        region: Option<String>,
        endpoint_url: Option<String>,
        format: Format,
    ) -> anyhow::Result<()> {
        if !cmd.needs_store() {
            return cmd.run(None, format).await;
        }
        let store = open(region, endpoint_url).await?;
        cmd.run(Some(&store as &dyn RotationStore), format).await
    }

    /// `keyroll rotate --store aws`: one rotation of a Secrets Manager secret, driven from
    /// here.
    pub async fn rotate(
        args: RotateArgs,
        region: Option<String>,
        endpoint_url: Option<String>,
        format: Format,
    ) -> anyhow::Result<()> {
        if args.rotation_lambda_arn.is_some() || args.rotation_rules.is_some() {
            anyhow::bail!(crate::UsageError(
                "with --store aws, keyroll rotate runs one rotation from this machine and leaves \
                 the secret's rotation configuration alone; to rotate on a schedule, deploy the \
                 rotation Lambda (docs/DEPLOY.md) and run `aws secretsmanager rotate-secret \
                 --rotation-lambda-arn ... --rotation-rules ...`"
                    .into()
            ));
        }
        // Bad flags fail before anything is contacted.
        let target_config = args.target_config()?;
        let notifier = args.notifier()?;
        let store = open(region, endpoint_url).await?;
        let desc = store
            .describe_secret(SecretIdRequest {
                secret_id: args.one_secret()?.to_string(),
            })
            .await?;
        if desc.rotation_enabled == Some(true)
            && let Some(f) = &desc.rotation_lambda_arn
        {
            tracing::warn!(
                secret = %desc.name,
                function = %f,
                "this secret is also rotated by a Lambda function on a schedule; run one driver \
                 per secret (see docs/DEPLOY.md)"
            );
        }
        let how = crate::rotate::How {
            target_config: &target_config,
            notifier: &notifier,
            allow_rotation_disabled: true,
            label: " (AWS Secrets Manager)",
        };
        crate::rotate::execute(&args, &store, &desc, &how, format).await
    }
}
