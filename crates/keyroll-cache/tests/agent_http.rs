//! `AgentHttpSource` against a local HTTP server answering as the agent does.

use std::collections::HashMap;

use axum::Router;
use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use keyroll_cache::agent_http::TOKEN_HEADER;
use keyroll_cache::{AgentHttpSource, SecretSource, SourceError, VersionSelector};
use secrecy::SecretString;
use serde_json::json;

async fn agent(Query(q): Query<HashMap<String, String>>, headers: HeaderMap) -> impl IntoResponse {
    if headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok()) != Some("tok") {
        return (
            StatusCode::UNAUTHORIZED,
            json!({"__type": "AccessDeniedException", "message": "bad token"}).to_string(),
        );
    }
    let stage = q.get("versionStage").map(String::as_str);
    let version = q.get("versionId").map(String::as_str);
    let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db-AbCdEf";
    match (q.get("secretId").map(String::as_str), stage, version) {
        (Some("app/db"), Some("AWSCURRENT"), None) => (
            StatusCode::OK,
            json!({"ARN": arn, "Name": "app/db", "VersionId": "v2", "SecretString": "{\"password\":\"pw\"}",
                   "VersionStages": ["AWSCURRENT"], "CreatedDate": 1700000000.5})
            .to_string(),
        ),
        (Some("bin"), None, Some("v1")) => (
            StatusCode::OK,
            json!({"ARN": arn, "Name": "bin", "VersionId": "v1", "SecretBinary": "AAEC",
                   "VersionStages": [], "CreatedDate": "1700000000"})
            .to_string(),
        ),
        _ => (
            StatusCode::BAD_REQUEST,
            json!({"__type": "ResourceNotFoundException", "message": "Secrets Manager can't find the specified secret."})
            .to_string(),
        ),
    }
}

async fn serve() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route("/secretsmanager/get", get(agent));
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    format!("http://{addr}")
}

fn source(url: &str, token: &str) -> AgentHttpSource {
    AgentHttpSource::new(url, SecretString::from(token.to_string())).unwrap()
}

#[tokio::test]
async fn reads_a_secret_string_with_the_token() {
    let url = serve().await;
    let e = source(&url, "tok")
        .get_secret_value("app/db", &VersionSelector::current())
        .await
        .unwrap();
    assert_eq!(e.name, "app/db");
    assert_eq!(e.version_id, "v2");
    assert_eq!(e.secret_string(), Some("{\"password\":\"pw\"}"));
    assert_eq!(e.version_stages, ["AWSCURRENT"]);
    assert_eq!(e.created_date, Some(1700000000.5));
    assert!(!format!("{e:?}").contains("pw"));
}

#[tokio::test]
async fn reads_a_binary_secret_by_version_id() {
    let url = serve().await;
    let e = source(&url, "tok")
        .get_secret_value("bin", &VersionSelector::version_id("v1"))
        .await
        .unwrap();
    assert_eq!(e.value.expose_bytes(), &[0, 1, 2]);
    assert!(e.value.is_binary());
    assert_eq!(e.created_date, Some(1700000000.0));
}

#[tokio::test]
async fn errors_carry_aws_s_type_and_status() {
    let url = serve().await;
    let err = source(&url, "tok")
        .get_secret_value("missing", &VersionSelector::current())
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    let err = source(&url, "wrong")
        .get_secret_value("app/db", &VersionSelector::current())
        .await
        .unwrap_err();
    match err {
        SourceError::Service { code, status, .. } => {
            assert_eq!(code, "AccessDeniedException");
            assert_eq!(status, Some(401));
        }
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn an_agent_that_is_not_there_is_a_transport_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = source(&format!("http://{addr}"), "tok")
        .get_secret_value("app/db", &VersionSelector::current())
        .await
        .unwrap_err();
    assert!(matches!(err, SourceError::Transport { .. }), "{err}");
    assert!(err.is_transient());
    assert!(err.to_string().contains("check the endpoint URL"), "{err}");
}
