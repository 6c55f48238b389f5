//! Shared set-up for the database target tests: a real server from keyroll-testkit, an
//! administrator session on it, the in-memory secret store, and the target under test.

#![allow(dead_code)]

pub mod scenarios;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use keyroll_core::api::*;
use keyroll_core::engine::{RotateOptions, RotationError, RotationReport, Silent, rotate};
use keyroll_core::memory::{MemoryBackend, memory_service};
use keyroll_core::ports::{RotationStore, SecretsApi, Target};
use keyroll_core::service::SecretsService;
use keyroll_targets::TargetConfig;
use keyroll_targets::database::StatsSnapshot;
use keyroll_targets::mysql::MysqlTarget;
use keyroll_targets::postgres::PostgresTarget;
use keyroll_testkit::mariadb::{MariadbOptions, MariadbServer};
use keyroll_testkit::postgres::{PostgresOptions, PostgresServer};
use mysql_async::prelude::Queryable;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

pub type Svc = SecretsService<MemoryBackend>;

/// How a login attempt ended.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginOutcome {
    Ok,
    AuthFailed,
    Other(String),
}

/// A real database server with an administrator session.
#[async_trait]
pub trait Db: Send + Sync {
    fn engine(&self) -> &'static str;
    fn host(&self) -> &str;
    fn port(&self) -> u16;
    fn ca(&self) -> Option<PathBuf>;
    /// The administrator's credentials (usable as a master secret).
    fn admin(&self) -> (String, String);
    /// A login user holding a privilege the tests can check (`app_data` table access).
    async fn create_app_user(&self, name: &str, password: &str);
    async fn set_password(&self, name: &str, password: &str);
    async fn login(&self, user: &str, password: &str) -> LoginOutcome;
    /// Whether `user` can read the `app_data` table (granted to app users).
    async fn can_read_app_data(&self, user: &str, password: &str) -> bool;
    async fn exec(&self, sql: &str);
    fn target(&self, cfg: TargetConfig) -> AnyTarget;
}

/// The target under test, with its statistics.
pub enum AnyTarget {
    Pg(PostgresTarget),
    My(MysqlTarget),
}

impl AnyTarget {
    pub fn stats(&self) -> StatsSnapshot {
        match self {
            AnyTarget::Pg(t) => t.stats(),
            AnyTarget::My(t) => t.stats(),
        }
    }
    pub fn as_target(&self) -> &dyn Target {
        match self {
            AnyTarget::Pg(t) => t,
            AnyTarget::My(t) => t,
        }
    }
}

// ---- PostgreSQL ------------------------------------------------------------------------------

pub struct Pg {
    pub server: PostgresServer,
    admin: tokio_postgres::Client,
}

pub async fn pg_with(opts: PostgresOptions) -> Pg {
    let server = PostgresServer::start_with(opts).expect("PostgreSQL 15 starts");
    let (admin, conn) =
        tokio_postgres::connect(&server.superuser_conn_string(), tokio_postgres::NoTls)
            .await
            .expect("superuser connects");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    admin
        .batch_execute("CREATE TABLE app_data (v int); INSERT INTO app_data VALUES (1)")
        .await
        .unwrap();
    Pg { server, admin }
}

pub async fn pg() -> Pg {
    pg_with(PostgresOptions::default()).await
}

fn pg_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}
fn pg_lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[async_trait]
impl Db for Pg {
    fn engine(&self) -> &'static str {
        "postgres"
    }
    fn host(&self) -> &str {
        self.server.host()
    }
    fn port(&self) -> u16 {
        self.server.port()
    }
    fn ca(&self) -> Option<PathBuf> {
        self.server.ca_cert_path().map(|p| p.to_path_buf())
    }
    fn admin(&self) -> (String, String) {
        (
            self.server.superuser().to_string(),
            self.server.superuser_password().to_string(),
        )
    }
    async fn create_app_user(&self, name: &str, password: &str) {
        let verifier = postgres_protocol::password::scram_sha_256(password.as_bytes());
        self.admin
            .batch_execute(&format!(
                "CREATE ROLE {} LOGIN PASSWORD {}; GRANT SELECT ON app_data TO {}",
                pg_ident(name),
                pg_lit(&verifier),
                pg_ident(name)
            ))
            .await
            .unwrap();
    }
    async fn set_password(&self, name: &str, password: &str) {
        let verifier = postgres_protocol::password::scram_sha_256(password.as_bytes());
        self.admin
            .batch_execute(&format!(
                "ALTER ROLE {} PASSWORD {}",
                pg_ident(name),
                pg_lit(&verifier)
            ))
            .await
            .unwrap();
    }
    async fn login(&self, user: &str, password: &str) -> LoginOutcome {
        let mut c = tokio_postgres::Config::new();
        c.host(self.host())
            .port(self.port())
            .user(user)
            .password(password)
            .dbname("postgres")
            .connect_timeout(Duration::from_secs(5));
        match c.connect(tokio_postgres::NoTls).await {
            Ok((client, conn)) => {
                let h = tokio::spawn(async move {
                    let _ = conn.await;
                });
                drop(client);
                let _ = h.await;
                LoginOutcome::Ok
            }
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::INVALID_PASSWORD) => {
                LoginOutcome::AuthFailed
            }
            Err(e) => LoginOutcome::Other(format!("{e:?}")),
        }
    }
    async fn can_read_app_data(&self, user: &str, password: &str) -> bool {
        let mut c = tokio_postgres::Config::new();
        c.host(self.host())
            .port(self.port())
            .user(user)
            .password(password)
            .dbname("postgres");
        let Ok((client, conn)) = c.connect(tokio_postgres::NoTls).await else {
            return false;
        };
        tokio::spawn(async move {
            let _ = conn.await;
        });
        client.simple_query("SELECT v FROM app_data").await.is_ok()
    }
    async fn exec(&self, sql: &str) {
        self.admin.batch_execute(sql).await.unwrap();
    }
    fn target(&self, cfg: TargetConfig) -> AnyTarget {
        AnyTarget::Pg(PostgresTarget::new(cfg))
    }
}

// ---- MariaDB ---------------------------------------------------------------------------------

pub struct Maria {
    pub server: MariadbServer,
    admin: tokio::sync::Mutex<mysql_async::Conn>,
    /// The authentication plugin app users get.
    pub plugin: &'static str,
}

pub async fn maria_with(opts: MariadbOptions, plugin: &'static str) -> Maria {
    let server = MariadbServer::start_with(opts).expect("MariaDB 10.11 starts");
    let o = mysql_async::OptsBuilder::default()
        .ip_or_hostname(server.host().to_string())
        .tcp_port(server.port())
        .user(Some(server.root_user().to_string()))
        .pass(Some(server.root_password().to_string()))
        .prefer_socket(false);
    let mut admin = mysql_async::Conn::new(o).await.expect("root connects");
    admin
        .query_drop("CREATE DATABASE appdb; CREATE TABLE appdb.app_data (v int); INSERT INTO appdb.app_data VALUES (1)")
        .await
        .unwrap();
    Maria {
        server,
        admin: tokio::sync::Mutex::new(admin),
        plugin,
    }
}

pub async fn maria() -> Maria {
    maria_with(MariadbOptions::default(), "mysql_native_password").await
}

pub fn my_ident(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}
/// A literal for the default sql_mode.
pub fn my_lit(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

impl Maria {
    pub async fn query(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let mut c = self.admin.lock().await;
        let rows: Vec<mysql_async::Row> = c.query(sql).await.unwrap();
        rows.iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| match r.as_ref(i) {
                        Some(mysql_async::Value::Bytes(b)) => {
                            Some(String::from_utf8_lossy(b).into_owned())
                        }
                        Some(mysql_async::Value::NULL) | None => None,
                        Some(v) => Some(v.as_sql(true)),
                    })
                    .collect()
            })
            .collect()
    }

    pub async fn show_grants(&self, user: &str) -> Vec<String> {
        self.query(&format!("SHOW GRANTS FOR {}@`%`", my_ident(user)))
            .await
            .into_iter()
            .filter_map(|r| r.into_iter().next().flatten())
            .collect()
    }
}

#[async_trait]
impl Db for Maria {
    fn engine(&self) -> &'static str {
        "mariadb"
    }
    fn host(&self) -> &str {
        self.server.host()
    }
    fn port(&self) -> u16 {
        self.server.port()
    }
    fn ca(&self) -> Option<PathBuf> {
        self.server.ca_cert_path().map(|p| p.to_path_buf())
    }
    fn admin(&self) -> (String, String) {
        (
            self.server.root_user().to_string(),
            self.server.root_password().to_string(),
        )
    }
    async fn create_app_user(&self, name: &str, password: &str) {
        let acct = format!("{}@`%`", my_ident(name));
        let create = match self.plugin {
            "ed25519" => format!(
                "CREATE USER {acct} IDENTIFIED VIA ed25519 USING PASSWORD({})",
                my_lit(password)
            ),
            _ => format!("CREATE USER {acct} IDENTIFIED BY {}", my_lit(password)),
        };
        let mut c = self.admin.lock().await;
        c.query_drop(format!(
            "{create}; GRANT SELECT ON `appdb`.`app_data` TO {acct}"
        ))
        .await
        .unwrap();
    }
    async fn set_password(&self, name: &str, password: &str) {
        let mut c = self.admin.lock().await;
        c.query_drop(format!(
            "SET PASSWORD FOR {}@`%` = PASSWORD({})",
            my_ident(name),
            my_lit(password)
        ))
        .await
        .unwrap();
    }
    async fn login(&self, user: &str, password: &str) -> LoginOutcome {
        let o = mysql_async::OptsBuilder::default()
            .ip_or_hostname(self.host().to_string())
            .tcp_port(self.port())
            .user(Some(user.to_string()))
            .pass(Some(password.to_string()))
            .prefer_socket(false);
        // Twice on refusal: mysql_async fails about one ed25519 login in 256 (it drops a
        // trailing zero byte of the server's nonce).
        let mut outcome = LoginOutcome::AuthFailed;
        for _ in 0..2 {
            outcome = match mysql_async::Conn::new(o.clone()).await {
                Ok(c) => {
                    let _ = c.disconnect().await;
                    return LoginOutcome::Ok;
                }
                Err(mysql_async::Error::Server(s)) if s.code == 1045 => LoginOutcome::AuthFailed,
                Err(e) => return LoginOutcome::Other(e.to_string()),
            };
        }
        outcome
    }
    async fn can_read_app_data(&self, user: &str, password: &str) -> bool {
        let o = mysql_async::OptsBuilder::default()
            .ip_or_hostname(self.host().to_string())
            .tcp_port(self.port())
            .user(Some(user.to_string()))
            .pass(Some(password.to_string()))
            .prefer_socket(false);
        let c = match mysql_async::Conn::new(o.clone()).await {
            Ok(c) => Ok(c),
            Err(_) => mysql_async::Conn::new(o).await,
        };
        let Ok(mut c) = c else {
            return false;
        };
        let ok = c.query_drop("SELECT v FROM appdb.app_data").await.is_ok();
        let _ = c.disconnect().await;
        ok
    }
    async fn exec(&self, sql: &str) {
        let mut c = self.admin.lock().await;
        c.query_drop(sql).await.unwrap();
    }
    fn target(&self, cfg: TargetConfig) -> AnyTarget {
        AnyTarget::My(MysqlTarget::new(cfg))
    }
}

// ---- The secret store ------------------------------------------------------------------------

/// A user's credentials as a secret holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creds {
    pub version: String,
    pub username: String,
    pub password: String,
    pub value: Value,
}

pub struct Harness<'a> {
    pub db: &'a dyn Db,
    pub svc: Svc,
    pub target: AnyTarget,
}

impl<'a> Harness<'a> {
    pub fn new(db: &'a dyn Db) -> Self {
        Self::with_config(db, config_for(db))
    }

    pub fn with_config(db: &'a dyn Db, cfg: TargetConfig) -> Self {
        Harness {
            db,
            svc: memory_service(),
            target: db.target(cfg),
        }
    }

    /// The secret JSON for a user of this server (AWS's format), plus `extra` keys.
    pub fn secret_json(&self, user: &str, password: &str, extra: Value) -> Value {
        let mut v = json!({
            "engine": self.db.engine(),
            "host": self.db.host(),
            "port": self.db.port(),
            "username": user,
            "password": password,
            "dbname": if self.db.engine() == "postgres" { "postgres" } else { "appdb" },
        });
        if let (Value::Object(m), Value::Object(x)) = (&mut v, extra) {
            m.extend(x);
        }
        v
    }

    /// Stores `value` as a new secret with rotation enabled; returns its ARN.
    pub async fn put_secret(&self, name: &str, value: &Value, tags: &[(&str, &str)]) -> String {
        keyroll_core::testing::rotatable_secret(&self.svc, name, &value.to_string(), tags, None)
            .await
            .unwrap()
    }

    /// An app user on the server and its single-user secret.
    pub async fn single_user(&self, name: &str, user: &str, password: &str) -> String {
        self.db.create_app_user(user, password).await;
        self.put_secret(name, &self.secret_json(user, password, json!({})), &[])
            .await
    }

    /// An app user, a master secret with the administrator's credentials, and the user's
    /// alternating-users secret.
    pub async fn alternating(&self, name: &str, user: &str, password: &str) -> String {
        self.db.create_app_user(user, password).await;
        let (admin, admin_pw) = self.db.admin();
        let master = self
            .put_secret(
                &format!("{name}-master"),
                &self.secret_json(&admin, &admin_pw, json!({})),
                &[],
            )
            .await;
        self.put_secret(
            name,
            &self.secret_json(user, password, json!({ "masterarn": master })),
            &[],
        )
        .await
    }

    pub async fn rotate(&self, arn: &str) -> Result<RotationReport, RotationError> {
        rotate(
            &self.svc,
            self.target.as_target(),
            arn,
            &RotateOptions::default(),
            &Silent,
        )
        .await
    }

    pub async fn rotate_with(
        &self,
        target: &dyn Target,
        arn: &str,
    ) -> Result<RotationReport, RotationError> {
        rotate(&self.svc, target, arn, &RotateOptions::default(), &Silent).await
    }

    pub async fn stage(&self, arn: &str, stage: &str) -> Option<Creds> {
        let r = self
            .svc
            .get_secret_value(GetSecretValueRequest {
                secret_id: arn.into(),
                version_id: None,
                version_stage: Some(stage.into()),
            })
            .await
            .ok()?;
        let text = r.secret_string?.expose_secret().to_string();
        let value: Value = serde_json::from_str(&text).ok()?;
        Some(Creds {
            version: r.version_id,
            username: value["username"].as_str()?.to_string(),
            password: value["password"].as_str()?.to_string(),
            value,
        })
    }

    pub async fn current(&self, arn: &str) -> Creds {
        self.stage(arn, "AWSCURRENT")
            .await
            .expect("AWSCURRENT exists")
    }

    pub async fn describe(&self, arn: &str) -> DescribeSecretResponse {
        self.svc
            .describe_secret(SecretIdRequest {
                secret_id: arn.into(),
            })
            .await
            .unwrap()
    }

    /// Puts `value` as the pending version of a rotation that has just begun (placeholder
    /// token), so that set/test/finish run on a value the test chose.
    pub async fn begin_with_pending(&self, arn: &str, value: &Value) -> String {
        let token = keyroll_core::ids::new_token();
        self.svc.begin_rotation(arn, &token).await.unwrap();
        self.svc
            .put_secret_value(PutSecretValueRequest {
                secret_id: arn.into(),
                client_request_token: Some(token.clone()),
                secret_string: Some(SecretString::from(value.to_string())),
                secret_binary: None,
                version_stages: Some(vec!["AWSPENDING".into()]),
                rotation_token: None,
            })
            .await
            .unwrap();
        token
    }
}

/// The default configuration, trusting the server's CA when it has one.
pub fn config_for(db: &dyn Db) -> TargetConfig {
    TargetConfig {
        ca_bundle: db.ca(),
        ..TargetConfig::default()
    }
}

/// Every printable ASCII punctuation character the database default policy allows.
pub fn allowed_punctuation(engine: &str) -> String {
    let excluded = if engine == "postgres" {
        "/@\"'\\:"
    } else {
        "/@\"'\\"
    };
    keyroll_core::password::PUNCTUATION
        .chars()
        .filter(|c| !excluded.contains(*c))
        .collect()
}

/// Arc'd for spawning.
pub type SharedDb = Arc<dyn Db>;
