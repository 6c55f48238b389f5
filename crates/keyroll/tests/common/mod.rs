//! Running the real `keyroll` binary on an embedded store in a temp dir, isolated from the
//! caller's environment (region, configuration file, store selection).

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The master key of every test store: base64 of the bytes 0..32.
pub const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// `keyroll --data-dir DIR ARGS…` with [`KEY`], no stdin, its output captured.
pub fn keyroll(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keyroll"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env("KEYROLL_MASTER_KEY", KEY)
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("KEYROLL_CONFIG")
        .env_remove("KEYROLL_STORE")
        .stdin(Stdio::null())
        .output()
        .expect("run keyroll")
}
