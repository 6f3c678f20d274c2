//! Who can read `/metrics`: by default anyone on the main address (as before); with
//! `MALL_METRICS_BIND` only a second listener serves it; with `MALL_METRICS_AUTH=admin` it needs
//! the admin credentials.

mod common;

use app::config::MetricsAuth;
use app::{Application, Config};
use common::{test_config, Backend};
use reqwest::{Client, StatusCode};
use serde_json::Value;

const TOKEN: &str = "metrics-test-admin-token";

struct Running {
    main: String,
    metrics: Option<String>,
    client: Client,
}

async fn start(configure: impl FnOnce(&mut Config)) -> Running {
    let mut config = test_config(Backend::Memory).await;
    configure(&mut config);
    let app = Application::build(&config).await.expect("the application builds");
    let main = format!("http://{}", app.address());
    let metrics = app.metrics_address().map(|address| format!("http://{address}"));
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    Running { main, metrics, client: Client::new() }
}

impl Running {
    async fn get(&self, url: String, token: Option<&str>) -> (StatusCode, Option<String>, String) {
        let mut request = self.client.get(url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("an answer");
        let status = response.status();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (status, content_type, response.text().await.expect("a body"))
    }
}

/// A 200 in the Prometheus text format.
#[track_caller]
fn assert_prometheus((status, content_type, body): (StatusCode, Option<String>, String)) {
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(content_type.is_some_and(|t| t.starts_with("text/plain")), "{body}");
    assert!(body.contains("# TYPE mall_outbox_undelivered gauge"), "{body}");
}

/// A SPEC JSON error.
#[track_caller]
fn assert_error(
    (status, _, body): (StatusCode, Option<String>, String),
    want: StatusCode,
    code: u64,
) {
    let json: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    assert_eq!((status, json["errorcode"].as_u64()), (want, Some(code)), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_metrics_are_open_on_the_main_address() {
    let app = start(|_| {}).await;
    assert!(app.metrics.is_none());
    assert_prometheus(app.get(format!("{}/metrics", app.main), None).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_bind_serves_metrics_there_and_only_there() {
    let app = start(|config| config.metrics_bind = Some("127.0.0.1:0".into())).await;
    let metrics = app.metrics.clone().expect("a metrics address");
    assert_ne!(metrics, app.main);
    assert_error(app.get(format!("{}/metrics", app.main), None).await, StatusCode::NOT_FOUND, 1);
    assert_prometheus(app.get(format!("{metrics}/metrics"), None).await);
    // The metrics listener serves nothing else; the main one still serves the API and /ready.
    for path in ["/health", "/product", "/ready", "/openapi.json"] {
        assert_error(app.get(format!("{metrics}{path}"), None).await, StatusCode::NOT_FOUND, 1);
    }
    let wrong_method = app.client.post(format!("{metrics}/metrics")).send().await.expect("answer");
    assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(app.get(format!("{}/product", app.main), None).await.0, StatusCode::OK);
    assert_ne!(app.get(format!("{}/ready", app.main), None).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_auth_admin_needs_the_admin_credentials() {
    let app = start(|config| {
        config.admin_token = Some(TOKEN.into());
        config.metrics_auth = MetricsAuth::Admin;
    })
    .await;
    let url = format!("{}/metrics", app.main);
    assert_error(app.get(url.clone(), None).await, StatusCode::UNAUTHORIZED, 6);
    assert_error(app.get(url.clone(), Some("not-the-token")).await, StatusCode::UNAUTHORIZED, 6);
    assert_prometheus(app.get(url, Some(TOKEN)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_auth_admin_without_an_admin_token_is_403() {
    let app = start(|config| config.metrics_auth = MetricsAuth::Admin).await;
    assert_error(app.get(format!("{}/metrics", app.main), None).await, StatusCode::FORBIDDEN, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_auth_admin_holds_on_the_metrics_bind_too() {
    let app = start(|config| {
        config.admin_token = Some(TOKEN.into());
        config.metrics_auth = MetricsAuth::Admin;
        config.metrics_bind = Some("127.0.0.1:0".into());
    })
    .await;
    let url = format!("{}/metrics", app.metrics.clone().expect("a metrics address"));
    assert_error(app.get(url.clone(), None).await, StatusCode::UNAUTHORIZED, 6);
    assert_prometheus(app.get(url, Some(TOKEN)).await);
}

#[test]
fn help_and_settings_name_the_metrics_options() {
    let output = std::process::Command::new(common::MALL).arg("--help").output().expect("runs");
    let help = String::from_utf8_lossy(&output.stdout);
    for word in ["--metrics-bind", "MALL_METRICS_BIND", "--metrics-auth", "MALL_METRICS_AUTH"] {
        assert!(help.contains(word), "--help does not mention {word}:\n{help}");
    }
    let config = <Config as clap::Parser>::try_parse_from([
        "mall",
        "--metrics-bind",
        "127.0.0.1:9100",
        "--metrics-auth",
        "admin",
    ])
    .expect("valid flags");
    assert_eq!(config.metrics_bind.as_deref(), Some("127.0.0.1:9100"));
    assert_eq!(config.metrics_auth, MetricsAuth::Admin);
    assert_eq!(Config::defaults().metrics_auth, MetricsAuth::Open);
    assert!(<Config as clap::Parser>::try_parse_from(["mall", "--metrics-auth", "x"]).is_err());
}
