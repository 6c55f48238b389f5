//! `bootstrap`: the Lambda custom runtime (`provided.al2023`) of keyroll's rotation function.
//!
//! Start-up reads the settings and asks for the first event; it connects to nothing else
//! before that. Settings the function cannot use are reported to Lambda's `/init/error` and
//! the process exits, so the misconfiguration shows in the console rather than as failed
//! rotations.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use keyroll_lambda::{Function, InvokeError, Settings};
use lambda_runtime::{LambdaEvent, service_fn};
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

const KEYROLL_CRATES: [&str; 4] = [
    "keyroll_lambda",
    "keyroll_core",
    "keyroll_targets",
    "keyroll_store",
];

/// JSON log lines on stdout (CloudWatch Logs). `KEYROLL_LOG` is a filter such as `debug` or
/// `keyroll_targets=debug,warn`; otherwise `AWS_LAMBDA_LOG_LEVEL` (Lambda's log-level
/// control) sets keyroll's level, and libraries log warnings only.
fn init_logging() -> Option<String> {
    let mut problem = None;
    let filter = match std::env::var("KEYROLL_LOG") {
        Ok(spec) => match spec.parse::<Targets>() {
            Ok(t) => Some(t),
            Err(e) => {
                problem = Some(format!(
                    "KEYROLL_LOG is not a valid filter ({e}); using the default"
                ));
                None
            }
        },
        Err(_) => None,
    };
    let filter = filter.unwrap_or_else(|| {
        let level = match std::env::var("AWS_LAMBDA_LOG_LEVEL")
            .unwrap_or_default()
            .to_ascii_lowercase()
            .as_str()
        {
            "trace" => tracing::Level::TRACE,
            "debug" => tracing::Level::DEBUG,
            "warn" => tracing::Level::WARN,
            "error" | "fatal" => tracing::Level::ERROR,
            _ => tracing::Level::INFO,
        };
        let mut t = Targets::new().with_default(tracing::Level::WARN);
        for c in KEYROLL_CRATES {
            t = t.with_target(c, level);
        }
        t
    });
    let layer = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_writer(std::io::stdout)
        .with_filter(filter);
    let _ = tracing_subscriber::registry().with(layer).try_init();
    problem
}

/// `POST /2018-06-01/runtime/init/error`: tells Lambda why the function cannot start.
fn report_init_error(error_type: &str, message: &str) {
    let Ok(api) = std::env::var("AWS_LAMBDA_RUNTIME_API") else {
        return;
    };
    let body = serde_json::json!({ "errorType": error_type, "errorMessage": message }).to_string();
    let send = || -> std::io::Result<()> {
        let mut s = TcpStream::connect(&api)?;
        s.set_write_timeout(Some(Duration::from_secs(2)))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        write!(
            s,
            "POST /2018-06-01/runtime/init/error HTTP/1.1\r\nHost: {api}\r\n\
             Content-Type: application/json\r\nLambda-Runtime-Function-Error-Type: {error_type}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        // Read the answer so the report is complete before the process exits.
        let mut answer = Vec::new();
        s.read_to_end(&mut answer)?;
        Ok(())
    };
    if let Err(e) = send() {
        tracing::error!(error = %e, "could not report the init error to the Lambda Runtime API");
    }
}

/// The variables Lambda sets for every function; `lambda_runtime` panics without them, so
/// say plainly what is wrong when `bootstrap` is started elsewhere.
fn lambda_environment_missing() -> Option<String> {
    let missing: Vec<&str> = [
        "AWS_LAMBDA_RUNTIME_API",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    ]
    .into_iter()
    .filter(|v| std::env::var_os(v).is_none())
    .collect();
    let memory_ok = match std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") {
        Ok(m) => m.parse::<i32>().is_ok(),
        Err(_) => true,
    };
    match (missing.is_empty(), memory_ok) {
        (true, true) => None,
        (true, false) => Some("AWS_LAMBDA_FUNCTION_MEMORY_SIZE is not a number".into()),
        (false, _) => Some(format!(
            "bootstrap is the AWS Lambda custom runtime of keyroll's rotation function and runs \
             inside Lambda; {} not set (to rotate from a machine, use `keyroll --store aws \
             rotate`)",
            missing.join(", ")
        )),
    }
}

fn main() -> ExitCode {
    if let Some(problem) = init_logging() {
        tracing::warn!("{problem}");
    }
    if let Some(problem) = lambda_environment_missing() {
        tracing::error!(error_type = "Runtime.InvalidEnvironment", "{problem}");
        eprintln!("bootstrap: {problem}");
        report_init_error("Runtime.InvalidEnvironment", &problem);
        return ExitCode::from(2);
    }
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error_type = "InvalidConfiguration", error = %e, "cannot start");
            report_init_error("InvalidConfiguration", &e.to_string());
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            report_init_error(
                "Runtime.StartFailed",
                &format!("cannot start the async runtime: {e}"),
            );
            return ExitCode::FAILURE;
        }
    };
    let function = Arc::new(Function::new(settings));
    let result = runtime.block_on(lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| {
            // Each event maps back only the code it runs: the resident peak is one event's.
            // (Done here rather than at start-up, where reading smaps would add ~3 ms to the
            // cold start; the first event also drops what only start-up used.)
            keyroll_lambda::memory::release_between_events();
            let function = function.clone();
            // What is left of the invocation: the step must end (as a Timeout) before it.
            let remaining = std::time::SystemTime::UNIX_EPOCH
                .checked_add(std::time::Duration::from_millis(event.context.deadline))
                .and_then(|d| d.duration_since(std::time::SystemTime::now()).ok());
            async move { function.invoke_within(&event.payload, remaining).await }
        },
    )));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "the Lambda runtime stopped");
            ExitCode::FAILURE
        }
    }
}

// `lambda_runtime` needs the handler's error to convert into a diagnostic.
const _: fn(InvokeError) -> lambda_runtime::Diagnostic = lambda_runtime::Diagnostic::from;
