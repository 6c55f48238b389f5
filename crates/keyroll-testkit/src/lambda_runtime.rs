//! A local Lambda Runtime API (the interface a custom runtime's `bootstrap` polls), on a free
//! loopback port: tests queue events, the function under test takes them with
//! `GET /2018-06-01/runtime/invocation/next` and answers with `…/{id}/response` or
//! `…/{id}/error`; a failed start-up is reported to `/2018-06-01/runtime/init/error`.
//!
//! Point a `bootstrap` at it with `AWS_LAMBDA_RUNTIME_API=` [`RuntimeApi::address`] (plus
//! [`RuntimeApi::function_env`] for the variables Lambda always sets).

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::process::LOOPBACK;
use crate::{Result, TestkitError};

const PREFIX: &str = "/2018-06-01/runtime";

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `POST …/{id}/response` with this body.
    Response(String),
    /// `POST …/{id}/error`: the `errorType`, the `errorMessage`, and the
    /// `Lambda-Runtime-Function-Error-Type` header.
    Error {
        error_type: String,
        error_message: String,
        header: Option<String>,
    },
}

impl Outcome {
    pub fn error_type(&self) -> Option<&str> {
        match self {
            Outcome::Error { error_type, .. } => Some(error_type),
            Outcome::Response(_) => None,
        }
    }
}

/// An error the function reported at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitError {
    pub error_type: String,
    pub error_message: String,
}

#[derive(Default)]
struct State {
    queue: VecDeque<(String, String)>,
    outcomes: HashMap<String, Outcome>,
    init_error: Option<InitError>,
    first_next: Option<Instant>,
    next_requests: u64,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    stop: AtomicBool,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The Runtime API server; stops accepting when dropped.
pub struct RuntimeApi {
    shared: Arc<Shared>,
    port: u16,
    ids: AtomicU64,
    accept: Option<thread::JoinHandle<()>>,
}

impl RuntimeApi {
    /// Listens on a free loopback port.
    pub fn start() -> Result<Self> {
        let listener = TcpListener::bind((LOOPBACK, 0))
            .map_err(TestkitError::io("binding the Lambda Runtime API listener"))?;
        let port = listener
            .local_addr()
            .map_err(TestkitError::io("reading the listener's address"))?
            .port();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        let accept = thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    let s = s.clone();
                    thread::spawn(move || serve(conn, &s));
                }
            }
        });
        Ok(RuntimeApi {
            shared,
            port,
            ids: AtomicU64::new(1),
            accept: Some(accept),
        })
    }

    /// `127.0.0.1:PORT`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        format!("{LOOPBACK}:{}", self.port)
    }

    /// The variables Lambda sets for every function, pointing at this server.
    pub fn function_env(&self, function_name: &str) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_LAMBDA_RUNTIME_API", self.address()),
            ("AWS_LAMBDA_FUNCTION_NAME", function_name.to_string()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".into()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{function_name}"),
            ),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "local".into()),
        ]
    }

    /// Queues an event and waits (up to `timeout`) for the function's answer.
    pub fn invoke(&self, event: &str, timeout: Duration) -> Result<Outcome> {
        let id = format!(
            "00000000-0000-4000-8000-{:012}",
            self.ids.fetch_add(1, Ordering::SeqCst)
        );
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.lock();
        st.queue.push_back((id.clone(), event.to_string()));
        self.shared.changed.notify_all();
        loop {
            if let Some(o) = st.outcomes.remove(&id) {
                return Ok(o);
            }
            if let Some(e) = &st.init_error {
                return Err(TestkitError::CommandFailed {
                    what: "the function's start-up".into(),
                    status: e.error_type.clone(),
                    output: e.error_message.clone(),
                });
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(TestkitError::NotReady {
                    what: format!("the answer to invocation {id}"),
                    waited_ms: timeout.as_millis(),
                    log: String::new(),
                });
            }
            st = self
                .shared
                .changed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Waits (up to `timeout`) for the function's first `GET …/invocation/next` and returns
    /// when it arrived.
    pub fn wait_first_next(&self, timeout: Duration) -> Option<Instant> {
        self.wait_for(timeout, |st| st.first_next)
    }

    /// Waits (up to `timeout`) for an `/init/error` report.
    pub fn wait_init_error(&self, timeout: Duration) -> Option<InitError> {
        self.wait_for(timeout, |st| st.init_error.clone())
    }

    /// How many times the function asked for work.
    pub fn next_requests(&self) -> u64 {
        self.shared.lock().next_requests
    }

    fn wait_for<T>(&self, timeout: Duration, f: impl Fn(&State) -> Option<T>) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.lock();
        loop {
            if let Some(v) = f(&st) {
                return Some(v);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            st = self
                .shared
                .changed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.changed.notify_all();
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect((LOOPBACK, self.port));
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

struct Request {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    body: String,
}

fn read_request(r: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn respond(w: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &str) -> bool {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(body);
    w.write_all(out.as_bytes()).is_ok() && w.flush().is_ok()
}

fn serve(conn: TcpStream, s: &Shared) {
    let Ok(mut w) = conn.try_clone() else {
        return;
    };
    let mut r = BufReader::new(conn);
    while let Some(req) = read_request(&mut r) {
        if s.stop.load(Ordering::SeqCst) {
            break;
        }
        let close = req
            .headers
            .get("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        if !route(&req, &mut w, s) || close {
            break;
        }
    }
    let _ = w.shutdown(Shutdown::Both);
}

fn route(req: &Request, w: &mut TcpStream, s: &Shared) -> bool {
    let accepted = r#"{"status":"OK"}"#;
    let path = req.path.strip_prefix(PREFIX).unwrap_or("");
    match (req.method.as_str(), path) {
        ("GET", "/invocation/next") => {
            let mut st = s.lock();
            st.next_requests += 1;
            if st.first_next.is_none() {
                st.first_next = Some(Instant::now());
            }
            s.changed.notify_all();
            let (id, event) = loop {
                if s.stop.load(Ordering::SeqCst) {
                    return false;
                }
                if let Some(e) = st.queue.pop_front() {
                    break e;
                }
                st = s
                    .changed
                    .wait_timeout(st, Duration::from_millis(200))
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            };
            drop(st);
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis())
                + 300_000;
            respond(
                w,
                "200 OK",
                &[
                    ("Lambda-Runtime-Aws-Request-Id", id),
                    ("Lambda-Runtime-Deadline-Ms", deadline.to_string()),
                    (
                        "Lambda-Runtime-Invoked-Function-Arn",
                        "arn:aws:lambda:us-east-1:123456789012:function:keyroll-rotation".into(),
                    ),
                    (
                        "Lambda-Runtime-Trace-Id",
                        "Root=1-00000000-000000000000000000000000;Sampled=0".into(),
                    ),
                ],
                &event,
            )
        }
        ("POST", "/init/error") => {
            let (error_type, error_message) = diagnostic(&req.body);
            let mut st = s.lock();
            st.init_error = Some(InitError {
                error_type,
                error_message,
            });
            s.changed.notify_all();
            drop(st);
            respond(w, "202 Accepted", &[], accepted)
        }
        ("POST", p) if p.starts_with("/invocation/") => {
            let rest = &p["/invocation/".len()..];
            let outcome = if let Some(id) = rest.strip_suffix("/response") {
                Some((id, Outcome::Response(req.body.clone())))
            } else if let Some(id) = rest.strip_suffix("/error") {
                let (error_type, error_message) = diagnostic(&req.body);
                Some((
                    id,
                    Outcome::Error {
                        error_type,
                        error_message,
                        header: req
                            .headers
                            .get("lambda-runtime-function-error-type")
                            .cloned(),
                    },
                ))
            } else {
                None
            };
            match outcome {
                Some((id, o)) => {
                    let mut st = s.lock();
                    st.outcomes.insert(id.to_string(), o);
                    s.changed.notify_all();
                    drop(st);
                    respond(w, "202 Accepted", &[], accepted)
                }
                None => respond(w, "404 Not Found", &[], r#"{"errorType":"NotFound"}"#),
            }
        }
        _ => respond(w, "404 Not Found", &[], r#"{"errorType":"NotFound"}"#),
    }
}

/// `errorType` and `errorMessage` of a diagnostic body (a non-JSON body is kept whole as the
/// message).
fn diagnostic(body: &str) -> (String, String) {
    let field = |name: &str| -> Option<String> {
        let key = format!("\"{name}\"");
        let at = body.find(&key)? + key.len();
        let rest = body[at..].trim_start().strip_prefix(':')?.trim_start();
        let rest = rest.strip_prefix('"')?;
        let mut out = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => return Some(out),
                '\\' => match chars.next()? {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'u' => {
                        let hex: String = chars.by_ref().take(4).collect();
                        out.push(
                            u32::from_str_radix(&hex, 16)
                                .ok()
                                .and_then(char::from_u32)
                                .unwrap_or('?'),
                        );
                    }
                    other => out.push(other),
                },
                c => out.push(c),
            }
        }
        None
    };
    (
        field("errorType").unwrap_or_default(),
        field("errorMessage").unwrap_or_else(|| body.to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String, String) {
        let mut s = TcpStream::connect(addr).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        let mut r = BufReader::new(s);
        r.read_to_string(&mut out).unwrap();
        let status = out[9..12].parse().unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        (status, head.to_string(), body.to_string())
    }

    #[test]
    fn serves_next_response_error_and_init_error() {
        let api = RuntimeApi::start().unwrap();
        let addr = api.address();
        let a2 = addr.clone();
        let worker = thread::spawn(move || {
            let (st, head, body) = http(&a2, "GET", "/2018-06-01/runtime/invocation/next", "");
            assert_eq!(st, 200);
            assert_eq!(body, r#"{"n":1}"#);
            let id = head
                .lines()
                .find_map(|l| l.strip_prefix("Lambda-Runtime-Aws-Request-Id: "))
                .unwrap()
                .to_string();
            let p = format!("/2018-06-01/runtime/invocation/{id}/response");
            assert_eq!(http(&a2, "POST", &p, "null").0, 202);
            let (_, head, _) = http(&a2, "GET", "/2018-06-01/runtime/invocation/next", "");
            let id = head
                .lines()
                .find_map(|l| l.strip_prefix("Lambda-Runtime-Aws-Request-Id: "))
                .unwrap()
                .to_string();
            let p = format!("/2018-06-01/runtime/invocation/{id}/error");
            let b = r#"{"errorType":"Boom","errorMessage":"it \"broke\""}"#;
            assert_eq!(http(&a2, "POST", &p, b).0, 202);
        });
        let first = api.invoke(r#"{"n":1}"#, Duration::from_secs(10)).unwrap();
        assert_eq!(first, Outcome::Response("null".into()));
        let second = api.invoke(r#"{"n":2}"#, Duration::from_secs(10)).unwrap();
        assert_eq!(second.error_type(), Some("Boom"));
        assert!(
            matches!(second, Outcome::Error { ref error_message, .. } if error_message == "it \"broke\"")
        );
        worker.join().unwrap();
        assert!(api.wait_first_next(Duration::ZERO).is_some());
        assert_eq!(api.next_requests(), 2);

        let b = r#"{"errorType":"InvalidConfiguration","errorMessage":"PASSWORD_LENGTH"}"#;
        assert_eq!(
            http(&addr, "POST", "/2018-06-01/runtime/init/error", b).0,
            202
        );
        let e = api.wait_init_error(Duration::from_secs(5)).unwrap();
        assert_eq!(e.error_type, "InvalidConfiguration");
        assert!(api.invoke("{}", Duration::from_secs(1)).is_err());
    }

    #[test]
    fn an_unanswered_invocation_times_out() {
        let api = RuntimeApi::start().unwrap();
        let err = api.invoke("{}", Duration::from_millis(50)).unwrap_err();
        assert!(err.to_string().contains("not ready"), "{err}");
    }
}
