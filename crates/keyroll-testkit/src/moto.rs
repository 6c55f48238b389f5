//! moto's server (`moto_server`, from PyPI's `moto[server]`): AWS Secrets Manager, IAM, STS
//! and SNS on a free loopback port, for tests of keyroll's AWS side. One server answers for
//! every service; point any AWS client's endpoint at [`MotoServer::endpoint`].
//!
//! The binary is looked up in `$KEYROLL_VENV/bin` (the venv `scripts/test` creates, default
//! `~/.cache/keyroll-venv`), then on `PATH`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::process::{LOOPBACK, ServerProcess, free_port, private_dir};
use crate::{Result, TestkitError};

/// Credentials moto accepts (it checks nothing); tests export them to AWS clients.
pub const ACCESS_KEY_ID: &str = "testing";
pub const SECRET_ACCESS_KEY: &str = "testing";
/// moto's default account id.
pub const ACCOUNT_ID: &str = "123456789012";

/// A running `moto_server`, stopped when dropped.
pub struct MotoServer {
    process: ServerProcess,
    port: u16,
    ready_in: Duration,
    _dir: tempfile::TempDir,
}

/// Where `moto_server` is.
pub fn moto_server_binary() -> Result<PathBuf> {
    let venv = std::env::var_os("KEYROLL_VENV")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/keyroll-venv")));
    if let Some(v) = venv {
        let p = v.join("bin/moto_server");
        if p.exists() {
            return Ok(p);
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("moto_server");
            if p.exists() {
                return Ok(p);
            }
        }
    }
    Err(TestkitError::MissingBinary {
        what: "moto_server",
        path: PathBuf::from("$KEYROLL_VENV/bin/moto_server"),
        package: "pip install 'moto[server]' (scripts/test does this)",
        env: "KEYROLL_VENV",
    })
}

impl MotoServer {
    /// Starts a fresh moto server (about a second: Python start-up).
    pub fn start() -> Result<Self> {
        let bin = moto_server_binary()?;
        let mut last = None;
        // Another process may take the free port before moto binds it: retry on a new one.
        for _ in 0..3 {
            let dir = private_dir("keyroll-moto-", None)?;
            let port = free_port()?;
            let log = dir.path().join("moto.log");
            let mut cmd = Command::new(&bin);
            cmd.arg("-H").arg(LOOPBACK).arg("-p").arg(port.to_string());
            cmd.env("PYTHONUNBUFFERED", "1");
            let mut process = ServerProcess::spawn("moto_server", cmd, None, &log, libc::SIGTERM)?;
            match process.wait_ready(Duration::from_secs(30), || http_ok(port, "/moto-api/")) {
                Ok(ready_in) => {
                    return Ok(MotoServer {
                        process,
                        port,
                        ready_in,
                        _dir: dir,
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| TestkitError::NotReady {
            what: "moto_server".into(),
            waited_ms: 0,
            log: String::new(),
        }))
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://{LOOPBACK}:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// How long the server took to answer its first request.
    pub fn ready_in(&self) -> Duration {
        self.ready_in
    }

    /// Forgets every resource (moto's `/moto-api/reset`).
    pub fn reset(&self) -> Result<()> {
        let (status, _) = http(self.port, "POST", "/moto-api/reset")
            .map_err(TestkitError::io("resetting moto"))?;
        if status / 100 != 2 {
            return Err(TestkitError::CommandFailed {
                what: "POST /moto-api/reset".into(),
                status: status.to_string(),
                output: String::new(),
            });
        }
        Ok(())
    }

    /// Environment variables that point an AWS SDK or the aws CLI at this server.
    pub fn aws_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_DEFAULT_REGION", "us-east-1".into()),
        ]
    }
}

fn http_ok(port: u16, path: &str) -> bool {
    matches!(http(port, "GET", path), Ok((s, _)) if s / 100 == 2)
}

/// A minimal HTTP/1.1 request on loopback; returns the status and the body.
fn http(port: u16, method: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(
        &(std::net::Ipv4Addr::LOCALHOST, port).into(),
        Duration::from_millis(200),
    )?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {LOOPBACK}:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    let status = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("not an HTTP response"))?;
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_answers_resets_and_stops() {
        let m = MotoServer::start().expect("moto_server (run scripts/test to install it)");
        assert!(m.endpoint().starts_with("http://127.0.0.1:"));
        assert!(http_ok(m.port(), "/moto-api/"));
        m.reset().unwrap();
        let port = m.port();
        drop(m);
        assert!(
            TcpStream::connect((LOOPBACK, port)).is_err(),
            "stopped on drop"
        );
    }
}
