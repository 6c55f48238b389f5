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
pub use imp::{rotate, secret};

#[cfg(not(feature = "aws"))]
fn not_built() -> anyhow::Error {
    anyhow::Error::new(crate::UsageError(
        "this keyroll was built without AWS support; rebuild with the `aws` feature (on by \
         default) or use --store embedded"
            .into(),
    ))
}

#[cfg(not(feature = "aws"))]
pub async fn secret(
    _cmd: SecretCmd,
    _region: Option<String>,
    _format: Format,
) -> anyhow::Result<()> {
    Err(not_built())
}

#[cfg(not(feature = "aws"))]
pub async fn rotate(
    _args: RotateArgs,
    _region: Option<String>,
    _format: Format,
) -> anyhow::Result<()> {
    Err(not_built())
}

#[cfg(feature = "aws")]
mod imp {
    use std::io::Write as _;
    use std::time::Duration;

    use keyroll_core::api::{GetSecretValueRequest, SecretIdRequest};
    use keyroll_core::engine::{RotateOptions, RotationObserver, StepError};
    use keyroll_core::model::{AWSCURRENT, Step};
    use keyroll_core::ports::{RotationStore, SecretsApi as _, VersionedValue};
    use keyroll_store::aws::{AwsOptions, AwsStore};
    use serde::Serialize;

    use super::*;
    use crate::output;

    async fn open(region: Option<String>) -> anyhow::Result<AwsStore> {
        let store = AwsStore::connect(AwsOptions {
            region,
            endpoint_url: None,
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

    /// `keyroll secret … --store aws`: the same commands, sent to Secrets Manager.
    pub async fn secret(
        cmd: SecretCmd,
        region: Option<String>,
        format: Format,
    ) -> anyhow::Result<()> {
        if !cmd.needs_store() {
            return cmd.run(None, format).await;
        }
        let store = open(region).await?;
        cmd.run(Some(&store as &dyn RotationStore), format).await
    }

    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct StepReport {
        step: Step,
        duration_ms: f64,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Report {
        #[serde(rename = "ARN")]
        arn: String,
        name: String,
        version_id: String,
        resumed: bool,
        steps: Vec<StepReport>,
        duration_ms: f64,
    }

    fn ms(d: Duration) -> f64 {
        (d.as_secs_f64() * 1e6).round() / 1e3
    }

    struct Progress {
        quiet: bool,
    }

    impl RotationObserver for Progress {
        fn started(&self, arn: &str, token: &str, resumed: bool) {
            if !self.quiet {
                let what = if resumed {
                    "resuming unfinished rotation of"
                } else {
                    "rotating"
                };
                let _ = writeln!(
                    std::io::stderr(),
                    "{what} {arn} (AWS Secrets Manager)\n  new version {token}"
                );
            }
        }
        fn step_finished(&self, step: Step, elapsed: Duration, error: Option<&StepError>) {
            if !self.quiet {
                let status = if error.is_some() { "FAILED" } else { "ok" };
                let _ = writeln!(
                    std::io::stderr(),
                    "  {:<13} {:<6} {:>9.3} ms",
                    step.as_str(),
                    status,
                    ms(elapsed)
                );
            }
        }
    }

    /// `keyroll rotate --store aws`: one rotation of a Secrets Manager secret, driven from
    /// here.
    pub async fn rotate(
        args: RotateArgs,
        region: Option<String>,
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
        let target_config = args.target_config()?;
        let store = open(region).await?;
        let desc = store
            .describe_secret(SecretIdRequest {
                secret_id: args.secret_id.clone(),
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
        let current = VersionedValue::from_response(
            store
                .get_secret_value(GetSecretValueRequest {
                    secret_id: desc.arn.clone(),
                    version_id: None,
                    version_stage: Some(AWSCURRENT.into()),
                })
                .await?,
        )?;
        let target = keyroll_targets::resolve(&desc, &current.value, &target_config)?;
        drop(current);
        let opts = RotateOptions {
            token: args.client_request_token.clone(),
            discard_pending: args.discard_pending,
            allow_rotation_disabled: true,
        };
        let report = keyroll_core::engine::rotate(
            &store,
            target.as_ref(),
            &desc.arn,
            &opts,
            &Progress { quiet: args.quiet },
        )
        .await?;
        output::print(
            format,
            &Report {
                arn: report.arn,
                name: report.name,
                version_id: report.version_id,
                resumed: report.resumed,
                steps: report
                    .steps
                    .iter()
                    .map(|(s, d)| StepReport {
                        step: *s,
                        duration_ms: ms(*d),
                    })
                    .collect(),
                duration_ms: ms(report.total),
            },
        )
    }
}
