//! A real SMTP sink on 127.0.0.1 (a free port) for tests: ESMTP with `STARTTLS` or TLS from
//! the first byte (certificate from a throwaway CA), `AUTH PLAIN` / `AUTH LOGIN`, scripted
//! transient (451) and permanent (550) refusals. Every accepted message is recorded with
//! its envelope, whether it came over TLS and who authenticated. Stopped on drop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use keyroll_testkit::tls::TestCa;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// No TLS at all (STARTTLS is not offered).
    Plain,
    /// Plain, then `STARTTLS`.
    StartTls,
    /// TLS from the first byte.
    Tls,
}

#[derive(Debug, Clone)]
pub struct SinkOptions {
    pub security: Security,
    /// Required credentials; `MAIL` before `AUTH` is refused (530).
    pub credentials: Option<(String, String)>,
    /// Answer the first N `MAIL FROM`s with 451 (try again later).
    pub transient_failures: u32,
    /// Answer every `RCPT TO` with 550.
    pub reject_recipients: bool,
}

impl SinkOptions {
    pub fn new(security: Security) -> Self {
        SinkOptions {
            security,
            credentials: None,
            transient_failures: 0,
            reject_recipients: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// The message as sent (headers and body), dot-unstuffed.
    pub data: String,
    pub tls: bool,
    pub authenticated_as: Option<String>,
}

impl Mail {
    pub fn header(&self, name: &str) -> Option<String> {
        let (head, _) = self.data.split_once("\r\n\r\n")?;
        // Unfold continuation lines.
        let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
        unfolded.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
    /// The body, decoded when it is quoted-printable.
    pub fn body(&self) -> String {
        let raw = self
            .data
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        let qp = self
            .header("Content-Transfer-Encoding")
            .is_some_and(|e| e.eq_ignore_ascii_case("quoted-printable"));
        if !qp {
            return raw;
        }
        let joined = raw.replace("=\r\n", "");
        let b = joined.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'='
                && i + 2 < b.len()
                && let Some(v) = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
            out.push(b[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

struct State {
    opts: SinkOptions,
    transient_left: Mutex<u32>,
    tx: mpsc::UnboundedSender<Mail>,
    all: Mutex<Vec<Mail>>,
}

pub struct SmtpSink {
    pub addr: SocketAddr,
    /// The CA that signed the sink's certificate (for `ca_file`).
    pub ca_file: PathBuf,
    _dir: tempfile::TempDir,
    state: Arc<State>,
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Mail>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn acceptor(ca: &TestCa) -> TlsAcceptor {
    let certs: Vec<_> = rustls_pemfile::certs(&mut ca.server_cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = rustls_pemfile::private_key(&mut ca.server_key_pem.as_bytes())
        .unwrap()
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

impl SmtpSink {
    pub async fn start(opts: SinkOptions) -> Self {
        let ca = TestCa::generate().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, &ca.ca_cert_pem).unwrap();
        let tls = acceptor(&ca);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let state = Arc::new(State {
            transient_left: Mutex::new(opts.transient_failures),
            opts,
            tx,
            all: Mutex::new(Vec::new()),
        });
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (st, tls) = (st.clone(), tls.clone());
                tokio::spawn(async move {
                    let _ = connection(stream, st, tls).await;
                });
            }
        });
        SmtpSink {
            addr,
            ca_file,
            _dir: dir,
            state,
            rx: tokio::sync::Mutex::new(rx),
            task,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Waits for the next accepted message (at most 10 s, then panics).
    pub async fn next(&self) -> Mail {
        tokio::time::timeout(Duration::from_secs(10), self.rx.lock().await.recv())
            .await
            .expect("a message within 10 s")
            .expect("sink running")
    }

    /// Every message accepted so far.
    pub fn received(&self) -> Vec<Mail> {
        self.state.all.lock().unwrap().clone()
    }
}

async fn connection(
    mut stream: tokio::net::TcpStream,
    st: Arc<State>,
    tls: TlsAcceptor,
) -> std::io::Result<()> {
    match st.opts.security {
        Security::Tls => {
            let mut s = tls.accept(stream).await?;
            s.write_all(b"220 sink.test ESMTP ready\r\n").await?;
            session(s, true, &st).await?;
        }
        Security::Plain | Security::StartTls => {
            stream.write_all(b"220 sink.test ESMTP ready\r\n").await?;
            if let Some(plain) = session(stream, false, &st).await? {
                let s = tls.accept(plain).await?;
                session(s, true, &st).await?;
            }
        }
    }
    Ok(())
}

fn b64(s: &str) -> Option<String> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
}

fn address(arg: &str) -> String {
    let start = arg.find('<').map_or(0, |i| i + 1);
    let end = arg[start..].find('>').map_or(arg.len(), |i| start + i);
    arg[start..end].to_string()
}

/// One SMTP session. Returns the stream when the client asked for `STARTTLS`.
async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    tls: bool,
    st: &State,
) -> std::io::Result<Option<S>> {
    let mut r = BufReader::new(stream);
    let mut authed: Option<String> = None;
    let mut from: Option<String> = None;
    let mut to: Vec<String> = Vec::new();
    let mut line = String::new();
    macro_rules! reply {
        ($($t:tt)*) => {{
            let s = format!($($t)*);
            r.get_mut().write_all(s.as_bytes()).await?;
            r.get_mut().write_all(b"\r\n").await?;
            r.get_mut().flush().await?;
        }};
    }
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        let cmd = line.trim_end_matches(['\r', '\n']).to_string();
        let (verb, arg) = cmd.split_once(' ').unwrap_or((cmd.as_str(), ""));
        let auth_offered =
            st.opts.credentials.is_some() && (tls || st.opts.security == Security::Plain);
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" | "HELO" => {
                let mut lines = vec!["250-sink.test".to_string()];
                if st.opts.security == Security::StartTls && !tls {
                    lines.push("250-STARTTLS".into());
                }
                if auth_offered {
                    lines.push("250-AUTH PLAIN LOGIN".into());
                }
                lines.push("250 8BITMIME".into());
                reply!("{}", lines.join("\r\n"));
            }
            "STARTTLS" if st.opts.security == Security::StartTls && !tls => {
                reply!("220 2.0.0 Ready to start TLS");
                return Ok(Some(r.into_inner()));
            }
            "AUTH" if auth_offered => {
                let (mech, initial) = arg.split_once(' ').unwrap_or((arg, ""));
                let creds = match mech.to_ascii_uppercase().as_str() {
                    "PLAIN" => {
                        let resp = if initial.is_empty() {
                            reply!("334 ");
                            line.clear();
                            r.read_line(&mut line).await?;
                            line.clone()
                        } else {
                            initial.to_string()
                        };
                        b64(&resp).and_then(|s| {
                            let mut parts = s.split('\0');
                            let _authzid = parts.next()?;
                            Some((parts.next()?.to_string(), parts.next()?.to_string()))
                        })
                    }
                    "LOGIN" => {
                        reply!("334 VXNlcm5hbWU6");
                        line.clear();
                        r.read_line(&mut line).await?;
                        let user = b64(&line);
                        reply!("334 UGFzc3dvcmQ6");
                        line.clear();
                        r.read_line(&mut line).await?;
                        user.zip(b64(&line))
                    }
                    _ => None,
                };
                if creds.is_some() && creds == st.opts.credentials {
                    authed = creds.map(|c| c.0);
                    reply!("235 2.7.0 Authentication successful");
                } else {
                    reply!("535 5.7.8 Authentication credentials invalid");
                }
            }
            "MAIL" => {
                if st.opts.credentials.is_some() && authed.is_none() {
                    reply!("530 5.7.0 Authentication required");
                    continue;
                }
                let transient = {
                    let mut left = st.transient_left.lock().unwrap();
                    let t = *left > 0;
                    if t {
                        *left -= 1;
                    }
                    t
                };
                if transient {
                    reply!("451 4.3.0 Try again later");
                } else {
                    from = Some(address(arg));
                    to.clear();
                    reply!("250 2.1.0 OK");
                }
            }
            "RCPT" => {
                if from.is_none() {
                    reply!("503 5.5.1 MAIL first");
                } else if st.opts.reject_recipients {
                    reply!("550 5.1.1 No such user here");
                } else {
                    to.push(address(arg));
                    reply!("250 2.1.5 OK");
                }
            }
            "DATA" => {
                if to.is_empty() {
                    reply!("503 5.5.1 RCPT first");
                    continue;
                }
                reply!("354 End data with <CR><LF>.<CR><LF>");
                let mut data = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).await? == 0 {
                        return Ok(None);
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                    let l = line.strip_prefix('.').unwrap_or(&line);
                    data.push_str(l);
                }
                let mail = Mail {
                    from: from.take().unwrap_or_default(),
                    to: std::mem::take(&mut to),
                    data,
                    tls,
                    authenticated_as: authed.clone(),
                };
                st.all.lock().unwrap().push(mail.clone());
                let _ = st.tx.send(mail);
                reply!("250 2.0.0 OK queued");
            }
            "RSET" => {
                from = None;
                to.clear();
                reply!("250 2.0.0 OK");
            }
            "NOOP" => reply!("250 2.0.0 OK"),
            "QUIT" => {
                reply!("221 2.0.0 Bye");
                return Ok(None);
            }
            _ => reply!("502 5.5.2 Command not recognized"),
        }
    }
}
