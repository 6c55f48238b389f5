//! Helpers shared by the embedded store's integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use keyroll_core::api::*;
use keyroll_core::ports::SecretsApi;
use keyroll_core::time::{ManualClock, Timestamp};
use keyroll_store::embedded::{EmbeddedStore, Env, MasterKeySource, OpenOptions, RegionStore};
use secrecy::{ExposeSecret, SecretSlice, SecretString};

/// 2026-01-01T00:00:00Z.
pub const T0: Timestamp = Timestamp(1_767_225_600_000);

/// A fixed test master key (hex form).
pub const KEY_HEX: &str = "5f1c0e9a7b3d2c4e6f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6";
/// Another key.
pub const OTHER_KEY_HEX: &str = "0000000000000000000000000000000000000000000000000000000000000001";

pub fn clock() -> ManualClock {
    ManualClock::new(T0)
}

pub fn options(dir: &Path, clock: &ManualClock) -> OpenOptions {
    OpenOptions::new(dir)
        .master_key(key(KEY_HEX))
        .clock(Arc::new(clock.clone()))
        .env(Env::empty())
}

pub fn key(text: &str) -> MasterKeySource {
    MasterKeySource::from_text(text).unwrap()
}

pub fn open(dir: &Path, clock: &ManualClock) -> EmbeddedStore {
    EmbeddedStore::open(options(dir, clock)).unwrap()
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub fn token(n: u64) -> String {
    format!("{n:08}-0000-4000-8000-000000000000")
}

pub fn s(v: &str) -> Option<SecretString> {
    Some(SecretString::from(v.to_string()))
}

pub async fn create(svc: &RegionStore, name: &str, value: &str) -> CreateSecretResponse {
    svc.create_secret(CreateSecretRequest {
        name: name.into(),
        client_request_token: Some(keyroll_core::ids::new_token()),
        secret_string: s(value),
        ..Default::default()
    })
    .await
    .unwrap()
}

pub async fn put(svc: &RegionStore, id: &str, token: &str, value: &str) -> PutSecretValueResponse {
    svc.put_secret_value(PutSecretValueRequest {
        secret_id: id.into(),
        client_request_token: Some(token.into()),
        secret_string: s(value),
        ..Default::default()
    })
    .await
    .unwrap()
}

pub async fn put_binary(
    svc: &RegionStore,
    id: &str,
    token: &str,
    value: &[u8],
) -> PutSecretValueResponse {
    svc.put_secret_value(PutSecretValueRequest {
        secret_id: id.into(),
        client_request_token: Some(token.into()),
        secret_binary: Some(SecretSlice::from(value.to_vec())),
        ..Default::default()
    })
    .await
    .unwrap()
}

pub async fn get(
    svc: &RegionStore,
    id: &str,
    stage: Option<&str>,
    version: Option<&str>,
) -> Result<GetSecretValueResponse, keyroll_core::SmError> {
    svc.get_secret_value(GetSecretValueRequest {
        secret_id: id.into(),
        version_id: version.map(str::to_string),
        version_stage: stage.map(str::to_string),
    })
    .await
}

pub async fn get_string(svc: &RegionStore, id: &str, stage: &str) -> Option<String> {
    get(svc, id, Some(stage), None)
        .await
        .ok()
        .and_then(|r| r.secret_string.map(|s| s.expose_secret().to_string()))
}

pub async fn stages(svc: &RegionStore, id: &str) -> BTreeMap<String, Vec<String>> {
    svc.describe_secret(SecretIdRequest {
        secret_id: id.into(),
    })
    .await
    .unwrap()
    .version_ids_to_stages
    .unwrap_or_default()
}

/// Every file under `dir` with its bytes.
pub fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Runs the ignored test `name` of this test binary as a child process, with `env` set.
pub fn child_command(name: &str, env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        name,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
        "-q",
    ])
    .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// A tiny deterministic PRNG (splitmix64) for test schedules.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
