//! A webhook receiver: a one-thread HTTP/1.1 server on a free loopback port that keeps the
//! body of every request it gets and answers `204 No Content`. For tests of notifications
//! (generic and Slack webhooks) from the CLI, the server and the Lambda function. The thread
//! ends with the test process.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::process::LOOPBACK;
use crate::{Result, TestkitError};

#[derive(Default)]
struct Received {
    bodies: Mutex<Vec<String>>,
    arrived: Condvar,
}

/// A running receiver; see the module documentation.
pub struct WebhookReceiver {
    url: String,
    received: Arc<Received>,
}

impl WebhookReceiver {
    pub fn start() -> Result<Self> {
        let listener = TcpListener::bind((LOOPBACK, 0))
            .map_err(TestkitError::io("binding the webhook receiver"))?;
        let addr = listener
            .local_addr()
            .map_err(TestkitError::io("the webhook receiver's address"))?;
        let received = Arc::new(Received::default());
        let keep = received.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                if let Some(body) = read_body(&conn) {
                    keep.bodies
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(body);
                    keep.arrived.notify_all();
                }
                let _ = (&conn).write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
            }
        });
        Ok(WebhookReceiver {
            url: format!("http://{addr}/hook"),
            received,
        })
    }

    /// Where to send: `http://127.0.0.1:PORT/hook`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every body received so far, in order.
    pub fn bodies(&self) -> Vec<String> {
        self.received
            .bodies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Waits until at least `n` bodies have arrived, or `timeout` passed; returns them all.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut bodies = self
            .received
            .bodies
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        while bodies.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            bodies = self
                .received
                .arrived
                .wait_timeout(bodies, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        bodies.clone()
    }
}

/// Reads one request's headers and its `Content-Length` body.
fn read_body(conn: &TcpStream) -> Option<String> {
    let mut reader = BufReader::new(conn);
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(String::from_utf8_lossy(&body).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_bodies_and_wakes_waiters() {
        let r = WebhookReceiver::start().unwrap();
        let addr = r
            .url()
            .trim_start_matches("http://")
            .trim_end_matches("/hook");
        for body in ["{\"a\":1}", "second"] {
            let mut s = TcpStream::connect(addr).unwrap();
            write!(
                s,
                "POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            let mut answer = String::new();
            s.read_to_string(&mut answer).unwrap();
            assert!(answer.starts_with("HTTP/1.1 204"), "{answer}");
        }
        assert_eq!(
            r.wait_for(2, Duration::from_secs(5)),
            ["{\"a\":1}", "second"]
        );
        assert_eq!(r.wait_for(3, Duration::from_millis(10)).len(), 2);
    }
}
