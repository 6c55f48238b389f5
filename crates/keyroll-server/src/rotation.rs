//! Rotation as the Secrets Manager service drives it: `RotateSecret`, the choice of rotation
//! function, the four steps (in-process with keyroll's engine, or an external command per
//! step), bookkeeping, metrics, cancellation between steps, and a bounded number of rotations
//! at once.
//!
//! The rotation itself is [`keyroll_core::engine::rotate_with`], the same orchestration as
//! `keyroll rotate`. Built-in functions (`keyroll` and AWS's RDS rotation function names) are
//! the engine's own steps over the target chosen from the secret's `engine`. Any other
//! function name must be mapped in the configuration to a command (a
//! [`RotationFunction`]), which receives each step's Lambda event
//! (`{"Step","SecretId","ClientRequestToken"}`) on stdin and, in its environment, this
//! server's endpoint, credentials and region — like a Lambda function calling Secrets
//! Manager.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use keyroll_core::api::*;
use keyroll_core::engine::{
    self, RotateOptions, RotationError, RotationFunction, RotationObserver, StepError, StepRunner,
};
use keyroll_core::ports::{RotationStore, SecretsApi};
use keyroll_core::rotators::{function_name, is_builtin};
use keyroll_core::{SmError, Step};
use keyroll_targets::AutoTarget;
use secrecy::ExposeSecret;
use tokio::io::AsyncWriteExt;
use tokio::sync::{Notify, Semaphore};

use crate::config::{Config, FunctionConfig};
use crate::metrics::RotationOutcome;
use crate::regions::{Regions, Service};
use crate::server::App;
use crate::wire::ApiError;

/// The rotation function a `RotationLambdaARN` names.
#[derive(Debug, Clone)]
pub enum Rotator {
    /// keyroll's engine, in-process.
    Builtin,
    /// A configured command.
    External {
        name: String,
        function: FunctionConfig,
    },
}

/// Picks the rotator for a function ARN. A function keyroll cannot run is refused the way AWS
/// refuses a function it cannot invoke.
pub fn resolve_rotator(config: &Config, lambda_arn: &str) -> Result<Rotator, ApiError> {
    if lambda_arn.is_empty() || lambda_arn.len() > 2048 {
        return Err(SmError::InvalidParameter(
            "RotationLambdaARN must be 1-2048 characters.".into(),
        )
        .into());
    }
    if is_builtin(lambda_arn) {
        return Ok(Rotator::Builtin);
    }
    let name = function_name(lambda_arn);
    match config.functions.get(name) {
        Some(f) if f.builtin => Ok(Rotator::Builtin),
        Some(f) => Ok(Rotator::External {
            name: name.to_string(),
            function: f.clone(),
        }),
        None => Err(ApiError::bad_request(
            "AccessDeniedException",
            format!(
                "Secrets Manager cannot invoke the specified Lambda function. Ensure that the \
                 function policy grants access to the principal secretsmanager.amazonaws.com. \
                 (keyroll: {name} is neither a built-in rotation function nor mapped to a \
                 command under [functions.{name}] in the configuration.)"
            ),
        )),
    }
}

/// What a rotation run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// All four steps.
    Rotate,
    /// `RotateImmediately=false`: testSecret only, then the placeholder is removed.
    TestOnly,
}

/// Why a rotation run did not complete.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("a rotation of this secret is already running")]
    AlreadyRunning,
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("{step} failed ({class}): {message}")]
    Step {
        step: Step,
        class: String,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] SmError),
    #[error("{0}")]
    Config(String),
}

impl From<ApiError> for RunError {
    fn from(e: ApiError) -> Self {
        RunError::Config(e.message)
    }
}

/// Tracks running rotations: bounded concurrency, cancellation, and draining at shutdown.
pub struct Rotations {
    semaphore: Arc<Semaphore>,
    cancels: Mutex<HashMap<String, Arc<AtomicBool>>>,
    active: AtomicUsize,
    idle: Notify,
    closed: AtomicBool,
}

/// Registration of one running rotation; dropping it unregisters.
pub struct Running<'a> {
    owner: &'a Rotations,
    arn: String,
    pub cancel: Arc<AtomicBool>,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.owner
            .cancels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.arn);
        if self.owner.active.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.owner.idle.notify_waiters();
        }
    }
}

impl Rotations {
    pub fn new(max_concurrent: usize) -> Self {
        Rotations {
            semaphore: Arc::new(Semaphore::new(max_concurrent.max(1))),
            cancels: Mutex::new(HashMap::new()),
            active: AtomicUsize::new(0),
            idle: Notify::new(),
            closed: AtomicBool::new(false),
        }
    }

    fn register(&self, arn: &str) -> Result<Running<'_>, RunError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(RunError::ShuttingDown);
        }
        let cancel = Arc::new(AtomicBool::new(false));
        let mut c = self.cancels.lock().unwrap_or_else(|p| p.into_inner());
        if c.contains_key(arn) {
            return Err(RunError::AlreadyRunning);
        }
        c.insert(arn.to_string(), cancel.clone());
        self.active.fetch_add(1, Ordering::SeqCst);
        Ok(Running {
            owner: self,
            arn: arn.to_string(),
            cancel,
        })
    }

    pub fn is_running(&self, arn: &str) -> bool {
        self.cancels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(arn)
    }

    /// Asks a running rotation of `arn` to stop before its next step.
    pub fn cancel(&self, arn: &str) {
        if let Some(c) = self
            .cancels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(arn)
        {
            c.store(true, Ordering::SeqCst);
        }
    }

    /// Whether the server is shutting down (no new rotations start).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    pub fn active(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    /// Refuses new rotations and waits (up to `grace`) for running ones to finish.
    pub async fn drain(&self, grace: Duration) -> bool {
        self.closed.store(true, Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let notified = self.idle.notified();
            if self.active() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.active() == 0;
            }
        }
    }
}

/// `RotateSecret`: validates, saves the configuration, adds the `AWSPENDING` placeholder and
/// starts the rotation in the background; answers at once with the new version id.
pub async fn rotate_secret<R: Regions>(
    app: &Arc<App<R>>,
    region: &str,
    req: RotateSecretRequest,
) -> Result<RotateSecretResponse, ApiError> {
    if app.rotations.is_closed() {
        return Err(ApiError::new(
            http::StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "The server is shutting down; retry the rotation against the restarted server.",
        ));
    }
    let svc = app.store.region(region)?;
    // The checks and the placeholder are the engine's; this server adds its own rule: a
    // function it cannot run is refused.
    let begun = engine::begin_request(
        svc.as_ref(),
        &req,
        |arn| app.rotations.is_running(arn),
        |lambda| resolve_rotator(&app.config, lambda).map(|_| ()),
    )
    .await?;
    if begun.retry {
        return Ok(RotateSecretResponse {
            arn: begun.arn,
            name: begun.name,
            version_id: Some(begun.version_id),
        });
    }
    let token = begun.version_id;
    let mode = if req.rotate_immediately.unwrap_or(true) {
        Mode::Rotate
    } else {
        Mode::TestOnly
    };
    let app2 = app.clone();
    let (region2, arn, token2) = (region.to_string(), begun.arn.clone(), token.clone());
    tokio::spawn(async move {
        match run_rotation(&app2, &region2, &arn, Some(token2), mode).await {
            Ok(()) => {}
            Err(e) => tracing::warn!(secret = %arn, error = %e, "rotation did not complete"),
        }
    });
    Ok(RotateSecretResponse {
        arn: begun.arn,
        name: begun.name,
        version_id: Some(token),
    })
}

/// Runs one rotation (or test) of `arn` to completion, waiting for a concurrency slot.
pub async fn run_rotation<R: Regions>(
    app: &Arc<App<R>>,
    region: &str,
    arn: &str,
    token: Option<String>,
    mode: Mode,
) -> Result<(), RunError> {
    let running = app.rotations.register(arn)?;
    let _permit = app
        .rotations
        .semaphore
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| RunError::ShuttingDown)?;
    app.metrics
        .rotations_in_progress
        .fetch_add(1, Ordering::Relaxed);
    let svc = app.store.region(region)?;
    // The engine takes the store's rotation lock itself.
    let result = rotate(app, region, &svc, arn, token, &running.cancel, mode).await;
    app.metrics
        .rotations_in_progress
        .fetch_sub(1, Ordering::Relaxed);
    if let Err(e) = app.store.sync_replicas(region, arn) {
        tracing::warn!(secret = %arn, error = %e, "could not update replicas after rotation");
    }
    result
}

async fn describe<B: keyroll_core::service::Backend>(
    svc: &keyroll_core::service::SecretsService<B>,
    arn: &str,
) -> Result<DescribeSecretResponse, SmError> {
    svc.describe_secret(SecretIdRequest {
        secret_id: arn.to_string(),
    })
    .await
}

/// A rotation (or, `Mode::TestOnly`, a test of the configuration) through the engine, with
/// the function the secret names.
async fn rotate<R: Regions>(
    app: &Arc<App<R>>,
    region: &str,
    svc: &Service<R>,
    arn: &str,
    token: Option<String>,
    cancel: &Arc<AtomicBool>,
    mode: Mode,
) -> Result<(), RunError> {
    let desc = describe(svc, arn).await?;
    let lambda = desc.rotation_lambda_arn.clone().ok_or_else(|| {
        RunError::Config("No Lambda rotation function ARN is associated with this secret.".into())
    })?;
    let builtin;
    let external;
    let runner = match resolve_rotator(&app.config, &lambda)? {
        Rotator::Builtin => {
            builtin = AutoTarget::new(app.config.targets.target_config());
            StepRunner::Builtin(&builtin)
        }
        Rotator::External { name, function } => {
            external = ExternalFunction {
                app: app.clone(),
                region: region.to_string(),
                name,
                function,
            };
            StepRunner::Function(&external)
        }
    };
    let s = &app.config.scheduler;
    let opts = RotateOptions {
        token,
        cancel: Some(cancel.clone()),
        step_timeout: Some(Duration::from_secs(s.step_timeout_secs.max(1))),
        rotation_timeout: Some(Duration::from_secs(s.rotation_timeout_secs.max(1))),
        ..RotateOptions::default()
    };
    let logs = Observer {
        app: app.as_ref(),
        region,
        arn,
        function: function_name(&lambda),
    };
    // RotationSucceeded / RotationFailed, delivered in the background.
    let observer =
        keyroll_notify::NotifyingObserver::new(&logs, &app.notifier, "keyroll serve", || svc.now());
    let result = match mode {
        Mode::Rotate => engine::rotate_with(svc.as_ref(), runner, arn, &opts, &observer).await,
        Mode::TestOnly => engine::test_rotation(svc.as_ref(), runner, arn, &opts, &observer).await,
    };
    let (ok, failed) = match mode {
        Mode::Rotate => (RotationOutcome::Succeeded, RotationOutcome::Failed),
        Mode::TestOnly => (RotationOutcome::Tested, RotationOutcome::TestFailed),
    };
    match result {
        Ok(report) => {
            app.metrics.rotation(ok);
            match mode {
                Mode::Rotate => {
                    tracing::info!(secret = %arn, version = %report.version_id, resumed = report.resumed, "rotation succeeded")
                }
                Mode::TestOnly => {
                    tracing::info!(secret = %arn, "rotation configuration tested (testSecret only)")
                }
            }
            Ok(())
        }
        Err(RotationError::Step { step, token, error }) => {
            app.metrics.rotation(failed);
            tracing::warn!(secret = %arn, version = %token, %step, class = error.class(), error = %error, ?mode, "rotation failed; AWSCURRENT unchanged before finishSecret, the pending version kept for the next run");
            Err(RunError::Step {
                step,
                class: error.class().to_string(),
                message: error.to_string(),
            })
        }
        Err(RotationError::AlreadyRunning { .. }) => Err(RunError::AlreadyRunning),
        Err(e @ RotationError::NotEnabled { .. }) => Err(RunError::Config(e.to_string())),
        Err(RotationError::Store(e)) => Err(e.into()),
    }
}

/// The engine's progress, as the server's logs, metrics and audit trail.
struct Observer<'a, R: Regions> {
    app: &'a App<R>,
    region: &'a str,
    arn: &'a str,
    function: &'a str,
}

impl<R: Regions> RotationObserver for Observer<'_, R> {
    fn started(&self, arn: &str, token: &str, resumed: bool) {
        tracing::info!(secret = %arn, version = %token, resumed, function = %self.function, "rotation started");
        if let Some(audit) = &self.app.audit {
            audit.rotation_started(
                self.app.clock.now(),
                self.region,
                arn,
                token,
                resumed,
                self.function,
            );
        }
    }

    fn step_finished(&self, step: Step, elapsed: Duration, error: Option<&StepError>) {
        if let Some(audit) = &self.app.audit {
            audit.rotation_step(
                self.app.clock.now(),
                self.region,
                self.arn,
                step.as_str(),
                elapsed,
                error.map(|e| (e.class(), e.to_string())),
            );
        }
        self.app.metrics.step(step, error.is_none(), elapsed);
        if error.is_none() {
            tracing::info!(secret = %self.arn, %step, elapsed_ms = elapsed.as_millis() as u64, "rotation step done");
        }
    }
}

/// A rotation function mapped to a command in the configuration.
struct ExternalFunction<R: Regions> {
    app: Arc<App<R>>,
    region: String,
    name: String,
    function: FunctionConfig,
}

#[async_trait]
impl<R: Regions> RotationFunction for ExternalFunction<R> {
    async fn invoke(&self, step: Step, secret_id: &str, token: &str) -> Result<(), StepError> {
        invoke(
            &self.app,
            &self.region,
            &self.name,
            &self.function,
            step,
            secret_id,
            token,
        )
        .await
        .map_err(|(class, message)| StepError::Function { class, message })
    }
}

/// What an external function inherits from the server's environment; nothing else.
const PASSED_THROUGH: &[&str] = &["PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR"];

/// A rotation function's process group, killed (with every process still in it) when the
/// step ends, whether it finished, failed or timed out: nothing it started outlives it.
struct ProcessGroup(Option<u32>);

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if let Some(pid) = self.0.and_then(|p| i32::try_from(p).ok()) {
            // SAFETY: killpg only sends a signal, to the group the child was made the leader
            // of (process_group(0)); a group id outlives its leader while any member is left,
            // and ESRCH (nothing left) is fine.
            unsafe {
                libc::killpg(pid, libc::SIGKILL);
            }
        }
    }
}

/// The credentials an external function gets for one step: a temporary key that may only
/// read and write the secret being rotated (and draw passwords), gone when the step ends
/// and expiring shortly after its timeout in any case.
struct FunctionCredential<'a> {
    keys: &'a crate::credentials::KeyStore,
    key: crate::credentials::AccessKey,
}

impl<'a> FunctionCredential<'a> {
    fn issue<R: Regions>(
        app: &'a Arc<App<R>>,
        region: &str,
        arn: &str,
        name: &str,
        timeout: Duration,
    ) -> Result<Self, (&'static str, String)> {
        use crate::identity::{Principal, PrincipalKind, unique_id};
        let err = |e: String| ("FunctionNotRunnable", e);
        let mut key = crate::credentials::generate_key(name).map_err(|e| err(e.to_string()))?;
        key.session_token =
            Some(crate::credentials::generate_session_token().map_err(|e| err(e.to_string()))?);
        let policy = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": [
                        "secretsmanager:DescribeSecret",
                        "secretsmanager:GetSecretValue",
                        "secretsmanager:PutSecretValue",
                        "secretsmanager:UpdateSecretVersionStage",
                        "secretsmanager:ListSecretVersionIds",
                    ],
                    "Resource": arn,
                },
                {"Effect": "Allow", "Action": "secretsmanager:GetRandomPassword", "Resource": "*"},
            ],
        })
        .to_string();
        let policy = keyroll_policy::Policy::parse(&policy)
            .map_err(|e| err(format!("the function's policy does not parse: {e}")))?;
        let account = &app.config.account;
        let role = "keyroll-rotation-function";
        let session = format!("{name}-{region}");
        let now = app.auth_clock.now().millis().div_euclid(1000);
        let role_arn = format!("arn:aws:iam::{account}:role/{role}");
        let principal = Principal {
            kind: PrincipalKind::AssumedRole {
                role_name: role.into(),
                role_arn: role_arn.clone(),
                session_name: session.clone(),
                source_arn: "keyroll".into(),
            },
            arn: format!("arn:aws:sts::{account}:assumed-role/{role}/{session}"),
            name: session.clone(),
            account: account.clone(),
            user_id: format!("{}:{session}", unique_id("AROA", account, role)),
            admin: false,
            policies: vec![Arc::new(policy)],
            tags: Default::default(),
            mfa_authenticated_at: None,
            issued_at: Some(now),
            expires_at: Some(now + timeout.as_secs() as i64 + 60),
            aliases: vec![role_arn],
            audit_identity: Default::default(),
        };
        app.keys.insert_temporary(key.clone(), Arc::new(principal));
        Ok(FunctionCredential {
            keys: &app.keys,
            key,
        })
    }
}

impl Drop for FunctionCredential<'_> {
    fn drop(&mut self) {
        self.keys.remove_temporary(&self.key.access_key_id);
    }
}

/// Most of a function's stderr kept for its error message.
const STDERR_TAIL: usize = 400;

/// Runs an external rotation function for one step.
async fn invoke<R: Regions>(
    app: &Arc<App<R>>,
    region: &str,
    name: &str,
    f: &FunctionConfig,
    step: Step,
    arn: &str,
    token: &str,
) -> Result<(), (&'static str, String)> {
    let event = serde_json::json!({
        "Step": step.as_str(),
        "SecretId": arn,
        "ClientRequestToken": token,
    })
    .to_string();
    let endpoint = app.endpoint();
    let timeout = Duration::from_secs(f.timeout_secs);
    let credential = FunctionCredential::issue(app, region, arn, name, timeout)?;
    let mut cmd = tokio::process::Command::new(&f.command[0]);
    // A cleared environment: only what a function needs, never the server's own secrets
    // (KEYROLL_MASTER_KEY, notification credentials, the admin key, cloud credentials).
    cmd.env_clear();
    for var in PASSED_THROUGH {
        if let Some(v) = std::env::var_os(var) {
            cmd.env(var, v);
        }
    }
    if std::env::var_os("PATH").is_none() {
        cmd.env("PATH", "/usr/local/bin:/usr/bin:/bin");
    }
    cmd.args(&f.command[1..])
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_ENDPOINT_URL_SECRETS_MANAGER", &endpoint)
        .env("SECRETS_MANAGER_ENDPOINT", &endpoint)
        .env("AWS_REGION", region)
        .env("AWS_DEFAULT_REGION", region)
        .env("AWS_LAMBDA_FUNCTION_NAME", name)
        .env("AWS_ACCESS_KEY_ID", &credential.key.access_key_id)
        .env(
            "AWS_SECRET_ACCESS_KEY",
            credential.key.secret_access_key.expose_secret(),
        )
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        // Its own process group: on timeout the whole group is killed, grandchildren too.
        .process_group(0)
        .kill_on_drop(true);
    if let Some(t) = &credential.key.session_token {
        cmd.env("AWS_SESSION_TOKEN", t.expose_secret());
    }
    cmd.envs(&f.env);
    if let Some(d) = &f.working_dir {
        cmd.current_dir(d);
    }
    let mut child = cmd.spawn().map_err(|e| {
        (
            "FunctionNotRunnable",
            format!(
                "cannot start rotation function {name} ({:?}): {e}",
                f.command[0]
            ),
        )
    })?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(event.as_bytes()).await;
        let _ = stdin.shutdown().await;
    }
    let _group = ProcessGroup(child.id());
    let out = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => {
            return Err((
                "FunctionError",
                format!("rotation function {name} at {step}: {e}"),
            ));
        }
        Err(_) => {
            return Err((
                "FunctionTimeout",
                format!(
                    "rotation function {name} did not finish {step} within {}s",
                    f.timeout_secs
                ),
            ));
        }
    };
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    let last: String = last.chars().take(STDERR_TAIL).collect();
    Err((
        "FunctionError",
        format!(
            "rotation function {name} failed at {step} ({}): {last}",
            out.status
        ),
    ))
}
