//! `keyroll secret ...`: the Secrets Manager API from the command line, flags named like
//! the aws CLI's.

use clap::{Args, Subcommand};
use keyroll_core::api::*;
use keyroll_core::ports::RotationStore;

use crate::input;
use crate::output::{self, Format};

#[derive(Debug, Subcommand)]
pub enum SecretCmd {
    /// Create a secret (CreateSecret).
    #[command(after_help = "Examples:\n  \
        keyroll secret create --name prod/db --secret-string file://db.json\n  \
        echo -n 's3cr3t' | keyroll secret create --name app/token --secret-string -\n  \
        keyroll secret create --name app/key --secret-binary fileb://key.bin --tags Key=env,Value=prod")]
    Create(CreateArgs),
    /// Read a secret's value (GetSecretValue). Prints the secret.
    Get(GetArgs),
    /// Store a new version of a secret's value (PutSecretValue).
    Put(PutArgs),
    /// Change a secret's description, KMS key id, or value (UpdateSecret).
    Update(UpdateArgs),
    /// Show a secret's metadata, versions and rotation state, never its value (DescribeSecret).
    Describe(IdArgs),
    /// List secrets (ListSecrets).
    #[command(after_help = "Examples:\n  \
        keyroll secret list --filters Key=name,Values=prod/\n  \
        keyroll secret list --filters Key=tag-key,Values=env Key=description,Values=!legacy\n  \
        keyroll secret list --include-planned-deletion --output table")]
    List(ListArgs),
    /// List a secret's versions and their staging labels (ListSecretVersionIds).
    Versions(VersionsArgs),
    /// Move or remove a staging label (UpdateSecretVersionStage).
    UpdateStage(UpdateStageArgs),
    /// Schedule a secret for deletion, or delete it at once (DeleteSecret).
    Delete(DeleteArgs),
    /// Cancel a scheduled deletion (RestoreSecret).
    Restore(IdArgs),
    /// Add or replace tags (TagResource).
    Tag(TagArgs),
    /// Remove tags (UntagResource).
    Untag(UntagArgs),
    /// Generate a random password (GetRandomPassword).
    RandomPassword(RandomPasswordArgs),
}

#[derive(Debug, Args)]
pub struct IdArgs {
    /// The secret's name, full ARN, or ARN without the random suffix.
    #[arg(long)]
    pub secret_id: String,
}

/// Where a value comes from: text, `-` for stdin, `file://PATH`; binary: `fileb://PATH`,
/// `-`, or base64.
#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct ValueArgs {
    /// The value as text; `-` reads stdin, `file://PATH` reads a file (keeps the secret out
    /// of your shell history).
    #[arg(long)]
    pub secret_string: Option<String>,
    /// A binary value: `fileb://PATH`, `-` for stdin, or base64 text.
    #[arg(long)]
    pub secret_binary: Option<String>,
}

impl ValueArgs {
    fn parts(
        &self,
    ) -> Result<
        (
            Option<secrecy::SecretString>,
            Option<secrecy::SecretSlice<u8>>,
        ),
        input::InputError,
    > {
        Ok((
            self.secret_string
                .as_deref()
                .map(input::secret_string)
                .transpose()?,
            self.secret_binary
                .as_deref()
                .map(input::secret_binary)
                .transpose()?,
        ))
    }

    fn is_set(&self) -> bool {
        self.secret_string.is_some() || self.secret_binary.is_some()
    }
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The name: 1-512 characters from A-Z a-z 0-9 / _ + = . @ -
    #[arg(long)]
    pub name: String,
    #[command(flatten)]
    pub value: ValueArgs,
    #[arg(long)]
    pub description: Option<String>,
    #[arg(long)]
    pub kms_key_id: Option<String>,
    /// Tags: `Key=env,Value=prod` (repeatable) or a JSON array.
    #[arg(long, num_args = 1..)]
    pub tags: Vec<String>,
    /// Idempotency token (32-64 characters); generated when absent.
    #[arg(long)]
    pub client_request_token: Option<String>,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    #[arg(long)]
    pub secret_id: String,
    /// The version to read, by id.
    #[arg(long)]
    pub version_id: Option<String>,
    /// The version to read, by staging label (default AWSCURRENT).
    #[arg(long)]
    pub version_stage: Option<String>,
}

#[derive(Debug, Args)]
pub struct PutArgs {
    #[arg(long)]
    pub secret_id: String,
    #[command(flatten)]
    pub value: ValueArgs,
    /// Labels for the new version (default AWSCURRENT).
    #[arg(long, num_args = 1..)]
    pub version_stages: Vec<String>,
    #[arg(long)]
    pub client_request_token: Option<String>,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    #[arg(long)]
    pub secret_id: String,
    #[command(flatten)]
    pub value: ValueArgs,
    #[arg(long)]
    pub description: Option<String>,
    #[arg(long)]
    pub kms_key_id: Option<String>,
    #[arg(long)]
    pub client_request_token: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// `Key=name,Values=prod/` (repeatable; prefix match; `!` negates) or a JSON array.
    #[arg(long, num_args = 1..)]
    pub filters: Vec<String>,
    /// Include secrets scheduled for deletion.
    #[arg(long)]
    pub include_planned_deletion: bool,
    /// Sort by creation date.
    #[arg(long, value_parser = ["asc", "desc"])]
    pub sort_order: Option<String>,
    /// Page size (1-100). Without it, every page is fetched.
    #[arg(long)]
    pub max_results: Option<i64>,
    #[arg(long)]
    pub next_token: Option<String>,
}

#[derive(Debug, Args)]
pub struct VersionsArgs {
    #[arg(long)]
    pub secret_id: String,
    /// Include versions without labels (deprecated).
    #[arg(long)]
    pub include_deprecated: bool,
    #[arg(long)]
    pub max_results: Option<i64>,
    #[arg(long)]
    pub next_token: Option<String>,
}

#[derive(Debug, Args)]
pub struct UpdateStageArgs {
    #[arg(long)]
    pub secret_id: String,
    /// The label to move or remove.
    #[arg(long)]
    pub version_stage: String,
    /// The version to attach the label to.
    #[arg(long)]
    pub move_to_version_id: Option<String>,
    /// The version that holds the label now (required to move an attached label).
    #[arg(long)]
    pub remove_from_version_id: Option<String>,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    #[arg(long)]
    pub secret_id: String,
    /// Days before the secret is purged (7-30, default 30); restore it until then.
    #[arg(long, conflicts_with = "force_delete_without_recovery")]
    pub recovery_window_in_days: Option<i64>,
    /// Delete at once, without recovery.
    #[arg(long)]
    pub force_delete_without_recovery: bool,
}

#[derive(Debug, Args)]
pub struct TagArgs {
    #[arg(long)]
    pub secret_id: String,
    /// `Key=env,Value=prod` (repeatable) or a JSON array.
    #[arg(long, num_args = 1.., required = true)]
    pub tags: Vec<String>,
}

#[derive(Debug, Args)]
pub struct UntagArgs {
    #[arg(long)]
    pub secret_id: String,
    #[arg(long, num_args = 1.., required = true)]
    pub tag_keys: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RandomPasswordArgs {
    /// 1-4096 (default 32).
    #[arg(long)]
    pub password_length: Option<i64>,
    #[arg(long)]
    pub exclude_characters: Option<String>,
    #[arg(long)]
    pub exclude_numbers: bool,
    #[arg(long)]
    pub exclude_punctuation: bool,
    #[arg(long)]
    pub exclude_uppercase: bool,
    #[arg(long)]
    pub exclude_lowercase: bool,
    #[arg(long)]
    pub include_space: bool,
    /// Allow passwords that lack some of the included character types.
    #[arg(long)]
    pub no_require_each_included_type: bool,
}

fn token(given: &Option<String>) -> String {
    given.clone().unwrap_or_else(keyroll_core::ids::new_token)
}

impl SecretCmd {
    /// Whether the command only reads (and so must not create a data directory).
    pub fn read_only(&self) -> bool {
        matches!(
            self,
            SecretCmd::Get(_)
                | SecretCmd::Describe(_)
                | SecretCmd::List(_)
                | SecretCmd::Versions(_)
                | SecretCmd::RandomPassword(_)
        )
    }

    pub fn needs_store(&self) -> bool {
        !matches!(self, SecretCmd::RandomPassword(_))
    }

    pub async fn run(
        self,
        store: Option<&dyn RotationStore>,
        format: Format,
    ) -> anyhow::Result<()> {
        let store = || store.ok_or_else(|| anyhow::anyhow!("internal error: no store was opened"));
        match self {
            SecretCmd::RandomPassword(a) => {
                let req = GetRandomPasswordRequest {
                    password_length: a.password_length,
                    exclude_characters: a.exclude_characters.clone(),
                    exclude_numbers: Some(a.exclude_numbers),
                    exclude_punctuation: Some(a.exclude_punctuation),
                    exclude_uppercase: Some(a.exclude_uppercase),
                    exclude_lowercase: Some(a.exclude_lowercase),
                    include_space: Some(a.include_space),
                    require_each_included_type: Some(!a.no_require_each_included_type),
                };
                let policy = req.policy()?;
                output::print(
                    format,
                    &GetRandomPasswordResponse {
                        random_password: policy.generate()?,
                    },
                )
            }
            SecretCmd::Create(a) => {
                let (secret_string, secret_binary) = a.value.parts()?;
                let tags = input::tags(&a.tags)?;
                let r = store()?
                    .create_secret(CreateSecretRequest {
                        name: a.name,
                        client_request_token: Some(token(&a.client_request_token)),
                        description: a.description,
                        kms_key_id: a.kms_key_id,
                        secret_string,
                        secret_binary,
                        tags: (!tags.is_empty()).then_some(tags),
                        ..Default::default()
                    })
                    .await?;
                output::print(format, &r)
            }
            SecretCmd::Get(a) => {
                let r = store()?
                    .get_secret_value(GetSecretValueRequest {
                        secret_id: a.secret_id,
                        version_id: a.version_id,
                        version_stage: a.version_stage,
                    })
                    .await?;
                output::print(format, &r)
            }
            SecretCmd::Put(a) => {
                if !a.value.is_set() {
                    anyhow::bail!(crate::UsageError(
                        "give the new value with --secret-string (or - / file://PATH) or \
                         --secret-binary"
                            .into()
                    ));
                }
                let (secret_string, secret_binary) = a.value.parts()?;
                let r = store()?
                    .put_secret_value(PutSecretValueRequest {
                        secret_id: a.secret_id,
                        client_request_token: Some(token(&a.client_request_token)),
                        secret_string,
                        secret_binary,
                        version_stages: (!a.version_stages.is_empty()).then_some(a.version_stages),
                        rotation_token: None,
                    })
                    .await?;
                output::print(format, &r)
            }
            SecretCmd::Update(a) => {
                let (secret_string, secret_binary) = a.value.parts()?;
                let r = store()?
                    .update_secret(UpdateSecretRequest {
                        secret_id: a.secret_id,
                        client_request_token: a
                            .value
                            .is_set()
                            .then(|| token(&a.client_request_token)),
                        description: a.description,
                        kms_key_id: a.kms_key_id,
                        secret_string,
                        secret_binary,
                    })
                    .await?;
                output::print(format, &r)
            }
            SecretCmd::Describe(a) => {
                let r = store()?
                    .describe_secret(SecretIdRequest {
                        secret_id: a.secret_id,
                    })
                    .await?;
                output::print(format, &r)
            }
            SecretCmd::List(a) => {
                let filters = input::filters(&a.filters)?;
                let mut req = ListSecretsRequest {
                    include_planned_deletion: a.include_planned_deletion.then_some(true),
                    max_results: a.max_results,
                    next_token: a.next_token.clone(),
                    filters: (!filters.is_empty()).then_some(filters),
                    sort_order: a.sort_order,
                };
                // Like the aws CLI: without --max-results, follow NextToken to the end (in
                // large pages where the store is in this process).
                if a.max_results.is_none() {
                    let mut all = store()?
                        .list_secrets_in_pages_of(req.clone(), crate::fleet::PAGE)
                        .await?;
                    while let Some(next) = all.next_token.take() {
                        req.next_token = Some(next);
                        let page = store()?
                            .list_secrets_in_pages_of(req.clone(), crate::fleet::PAGE)
                            .await?;
                        all.secret_list.extend(page.secret_list);
                        all.next_token = page.next_token;
                    }
                    return output::print(format, &all);
                }
                output::print(format, &store()?.list_secrets(req).await?)
            }
            SecretCmd::Versions(a) => {
                let mut req = ListSecretVersionIdsRequest {
                    secret_id: a.secret_id,
                    max_results: a.max_results,
                    next_token: a.next_token.clone(),
                    include_deprecated: a.include_deprecated.then_some(true),
                };
                let mut all = store()?.list_secret_version_ids(req.clone()).await?;
                while a.max_results.is_none() {
                    let Some(next) = all.next_token.take() else {
                        break;
                    };
                    req.next_token = Some(next);
                    let page = store()?.list_secret_version_ids(req.clone()).await?;
                    all.versions.extend(page.versions);
                    all.next_token = page.next_token;
                }
                output::print(format, &all)
            }
            SecretCmd::UpdateStage(a) => {
                let r = store()?
                    .update_secret_version_stage(UpdateSecretVersionStageRequest {
                        secret_id: a.secret_id,
                        version_stage: a.version_stage,
                        remove_from_version_id: a.remove_from_version_id,
                        move_to_version_id: a.move_to_version_id,
                    })
                    .await?;
                output::print(format, &r)
            }
            SecretCmd::Delete(a) => {
                let r = store()?
                    .delete_secret(DeleteSecretRequest {
                        secret_id: a.secret_id,
                        recovery_window_in_days: a.recovery_window_in_days,
                        force_delete_without_recovery: a
                            .force_delete_without_recovery
                            .then_some(true),
                    })
                    .await?;
                output::print(format, &r)
            }
            SecretCmd::Restore(a) => {
                let r = store()?
                    .restore_secret(SecretIdRequest {
                        secret_id: a.secret_id,
                    })
                    .await?;
                output::print(format, &r)
            }
            SecretCmd::Tag(a) => {
                let tags = input::tags(&a.tags)?;
                let r = store()?
                    .tag_resource(TagResourceRequest {
                        secret_id: a.secret_id,
                        tags,
                    })
                    .await?;
                output::print(format, &r)
            }
            SecretCmd::Untag(a) => {
                let r = store()?
                    .untag_resource(UntagResourceRequest {
                        secret_id: a.secret_id,
                        tag_keys: a.tag_keys,
                    })
                    .await?;
                output::print(format, &r)
            }
        }
    }
}
