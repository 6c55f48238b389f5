//! Shared set-up: moto as Secrets Manager (with a registered rotation function so that its
//! `RotateSecret` creates the service's placeholder), throwaway databases, and login checks.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use keyroll_core::Step;
use keyroll_store::aws::AwsStore;
use keyroll_testkit::mariadb::MariadbServer;
use keyroll_testkit::moto::{ACCESS_KEY_ID, MotoServer, SECRET_ACCESS_KEY};
use keyroll_testkit::postgres::PostgresServer;
use serde_json::{Value, json};

pub const FUNCTION: &str = "keyroll-rotation";

/// moto with a rotation function registered (moto's Lambda without Docker: invoking it does
/// nothing). `RotateSecret` then does what Secrets Manager does before invoking the
/// function: it adds a version without a value labelled `AWSPENDING` and returns its id. The
/// tests deliver the four step events themselves, like the service.
pub struct Aws {
    pub moto: MotoServer,
    pub client: Client,
    pub function_arn: String,
}

fn raw(
    port: u16,
    method: &str,
    path: &str,
    service: &str,
    ctype: &str,
    body: &str,
) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to moto");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    // moto routes by the service named in the credential scope; it checks no signature.
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/20260101/us-east-1/{service}/aws4_request, \
         SignedHeaders=host, Signature=0"
    );
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: {auth}\r\n\
         Content-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

impl Aws {
    pub fn start() -> Aws {
        let moto = MotoServer::start().expect("moto_server (scripts/test installs it)");
        let port = moto.port();
        let (st, body) = raw(
            port,
            "POST",
            "/moto-api/config",
            "moto",
            "application/json",
            r#"{"lambda":{"use_docker":false}}"#,
        );
        assert!(st / 100 == 2, "moto config: {st} {body}");
        let (st, body) = raw(
            port,
            "POST",
            "/",
            "iam",
            "application/x-www-form-urlencoded",
            &format!(
                "Action=CreateRole&Version=2010-05-08&RoleName={FUNCTION}&AssumeRolePolicyDocument=%7B%7D"
            ),
        );
        assert_eq!(st, 200, "CreateRole: {body}");
        let (st, body) = raw(
            port,
            "POST",
            "/2015-03-31/functions",
            "lambda",
            "application/json",
            &json!({
                "FunctionName": FUNCTION,
                "Runtime": "provided.al2023",
                "Role": format!("arn:aws:iam::{}:role/{FUNCTION}", keyroll_testkit::moto::ACCOUNT_ID),
                "Handler": "bootstrap",
                // An empty zip archive: moto's Lambda without Docker never runs it.
                "Code": {"ZipFile": "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA=="},
            })
            .to_string(),
        );
        assert!(st / 100 == 2, "CreateFunction: {st} {body}");
        let function_arn = serde_json::from_str::<Value>(&body).unwrap()["FunctionArn"]
            .as_str()
            .unwrap()
            .to_string();
        let conf = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .http_client(keyroll_store::aws::https_client())
            .region(Region::new("us-east-1"))
            .endpoint_url(moto.endpoint())
            .credentials_provider(Credentials::new(
                ACCESS_KEY_ID,
                SECRET_ACCESS_KEY,
                None,
                None,
                "moto",
            ))
            .build();
        Aws {
            moto,
            client: Client::from_conf(conf),
            function_arn,
        }
    }

    pub fn store(&self) -> AwsStore {
        AwsStore::new(self.client.clone())
    }

    pub async fn create_secret(&self, name: &str, value: &Value) -> String {
        self.client
            .create_secret()
            .name(name)
            .secret_string(value.to_string())
            .send()
            .await
            .unwrap()
            .arn()
            .unwrap()
            .to_string()
    }

    /// What Secrets Manager does when a rotation starts: `RotateSecret` (rotation enabled,
    /// the function saved, a value-less `AWSPENDING` version). Returns its version id.
    pub async fn rotate_secret(&self, secret: &str) -> String {
        let out = self
            .client
            .rotate_secret()
            .secret_id(secret)
            .rotation_lambda_arn(&self.function_arn)
            .rotation_rules(
                aws_sdk_secretsmanager::types::RotationRulesType::builder()
                    .automatically_after_days(30)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let token = out.version_id().unwrap().to_string();
        let stages = self.stages(secret).await;
        assert_eq!(
            stages.get(&token).map(Vec::as_slice),
            Some(&["AWSPENDING".to_string()][..])
        );
        token
    }

    /// After a successful `finishSecret`, Secrets Manager considers the rotation complete.
    /// moto refuses the next `RotateSecret` while `AWSPENDING` shares `AWSCURRENT`'s version
    /// (the reverse of AWS's documented rule), so the tests take `AWSPENDING` off as keyroll's
    /// own orchestrator does.
    pub async fn complete(&self, secret: &str, token: &str) {
        self.client
            .update_secret_version_stage()
            .secret_id(secret)
            .version_stage("AWSPENDING")
            .remove_from_version_id(token)
            .send()
            .await
            .unwrap();
    }

    pub async fn stages(&self, secret: &str) -> std::collections::HashMap<String, Vec<String>> {
        self.client
            .describe_secret()
            .secret_id(secret)
            .send()
            .await
            .unwrap()
            .version_ids_to_stages()
            .cloned()
            .unwrap_or_default()
    }

    pub async fn value(&self, secret: &str, stage: &str) -> Value {
        let s = self
            .client
            .get_secret_value()
            .secret_id(secret)
            .version_stage(stage)
            .send()
            .await
            .unwrap();
        serde_json::from_str(s.secret_string().unwrap()).unwrap()
    }
}

pub fn event(step: Step, secret: &str, token: &str) -> Value {
    json!({"Step": step.as_str(), "SecretId": secret, "ClientRequestToken": token})
}

/// A throwaway database server of one engine.
pub enum Db {
    Postgres(PostgresServer),
    Mariadb(MariadbServer),
}

impl Db {
    pub fn start(engine: &str) -> Db {
        match engine {
            "postgres" => Db::Postgres(PostgresServer::start().expect("PostgreSQL 15")),
            _ => Db::Mariadb(MariadbServer::start().expect("MariaDB 10.11")),
        }
    }

    pub fn engine(&self) -> &'static str {
        match self {
            Db::Postgres(_) => "postgres",
            Db::Mariadb(_) => "mariadb",
        }
    }

    pub fn port(&self) -> u16 {
        match self {
            Db::Postgres(s) => s.port(),
            Db::Mariadb(s) => s.port(),
        }
    }

    /// The administrator's secret (the master secret of alternating users).
    pub fn admin_secret(&self) -> Value {
        let (user, password) = match self {
            Db::Postgres(s) => (
                s.superuser().to_string(),
                s.superuser_password().to_string(),
            ),
            Db::Mariadb(s) => (s.root_user().to_string(), s.root_password().to_string()),
        };
        self.secret(&user, &password)
    }

    pub fn secret(&self, user: &str, password: &str) -> Value {
        let mut v = json!({
            "engine": self.engine(),
            "host": "127.0.0.1",
            "port": self.port(),
            "username": user,
            "password": password,
        });
        if let Db::Postgres(_) = self {
            v["dbname"] = json!("postgres");
        }
        v
    }

    /// Creates a login user with the administrator's credentials.
    pub async fn create_user(&self, user: &str, password: &str) {
        let admin = self.admin_secret();
        match self {
            Db::Postgres(_) => {
                let c = pg_connect(&admin).await.unwrap();
                // Test-controlled identifiers and passwords without quotes.
                c.batch_execute(&format!("CREATE ROLE {user} LOGIN PASSWORD '{password}'"))
                    .await
                    .unwrap();
            }
            Db::Mariadb(_) => {
                use mysql_async::prelude::Queryable;
                let mut c = my_connect(&admin).await.unwrap();
                c.query_drop(format!(
                    "CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'"
                ))
                .await
                .unwrap();
                c.disconnect().await.unwrap();
            }
        }
    }

    /// Whether the credentials of a secret value log in (and run a query).
    pub async fn logs_in(&self, secret: &Value) -> bool {
        match self {
            Db::Postgres(_) => match pg_connect(secret).await {
                Ok(c) => c.simple_query("SELECT 1").await.is_ok(),
                Err(_) => false,
            },
            Db::Mariadb(_) => match my_connect(secret).await {
                Ok(mut c) => {
                    use mysql_async::prelude::Queryable;
                    let ok = c.query_drop("SELECT 1").await.is_ok();
                    let _ = c.disconnect().await;
                    ok
                }
                Err(_) => false,
            },
        }
    }
}

fn field<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_else(|| panic!("secret has no {k}"))
}

async fn pg_connect(v: &Value) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host("127.0.0.1")
        .port(v["port"].as_u64().unwrap() as u16)
        .user(field(v, "username"))
        .password(field(v, "password"))
        .dbname("postgres")
        .connect_timeout(Duration::from_secs(5));
    let (client, conn) = cfg.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

async fn my_connect(v: &Value) -> Result<mysql_async::Conn, mysql_async::Error> {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(v["port"].as_u64().unwrap() as u16)
        .user(Some(field(v, "username")))
        .pass(Some(field(v, "password")))
        .prefer_socket(false);
    mysql_async::Conn::new(opts).await
}

/// A loopback TCP proxy in front of moto that counts the Secrets Manager operations going
/// through it (the `X-Amz-Target: secretsmanager.<Operation>` header of each request), so a
/// test or the benchmark can say how many round trips a rotation made, by operation. It
/// forwards bytes unchanged in both directions, so keep-alive connections work as they do
/// against moto itself.
pub struct CountingProxy {
    port: u16,
    counts: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, u64>>>,
    connections: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl CountingProxy {
    pub fn start(upstream: u16) -> CountingProxy {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind the proxy");
        let port = listener.local_addr().unwrap().port();
        let counts = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let connections = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (c, s, conns) = (counts.clone(), stop.clone(), connections.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                conns.fetch_add(1, Ordering::SeqCst);
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (mut c_read, mut s_write) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (mut s_read, mut c_write) = (server, client);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s_read, &mut c_write);
                    let _ = c_write.shutdown(std::net::Shutdown::Both);
                });
                let counts = c.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 * 1024];
                    let mut line: Vec<u8> = Vec::new();
                    loop {
                        let n = match c_read.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        for &b in &buf[..n] {
                            if b == b'\n' {
                                count_header(&line, &counts);
                                line.clear();
                            } else if line.len() < 512 {
                                line.push(b);
                            }
                        }
                        if s_write.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = s_write.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        CountingProxy {
            port,
            counts,
            connections,
            stop,
        }
    }

    /// The endpoint to give the function instead of moto's.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Operations counted so far.
    pub fn counts(&self) -> std::collections::BTreeMap<String, u64> {
        self.counts.lock().unwrap().clone()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// TCP connections accepted so far (in front of a database: the logins).
    pub fn connections(&self) -> u64 {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Forgets what was counted.
    pub fn reset(&self) {
        self.counts.lock().unwrap().clear();
        self.connections
            .store(0, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn total(&self) -> u64 {
        self.counts.lock().unwrap().values().sum()
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn count_header(line: &[u8], counts: &std::sync::Mutex<std::collections::BTreeMap<String, u64>>) {
    let line = String::from_utf8_lossy(line);
    let Some((name, value)) = line.trim_end_matches('\r').split_once(':') else {
        return;
    };
    if !name.trim().eq_ignore_ascii_case("x-amz-target") {
        return;
    }
    let value = value.trim();
    let op = value.strip_prefix("secretsmanager.").unwrap_or(value);
    *counts.lock().unwrap().entry(op.to_string()).or_default() += 1;
}

/// `a=1 b=2` from counts by operation.
pub fn format_counts(counts: &std::collections::BTreeMap<String, u64>) -> String {
    counts
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}
