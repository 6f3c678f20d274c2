//! The API description matches the router, and it is served with Swagger UI.

mod common;

use std::collections::BTreeSet;

use app::Application;
use common::{test_config, Backend};
use reqwest::StatusCode;
use serde_json::Value;

/// (path, method) of every operation in an OpenAPI document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            let methods = item.as_object().expect("a path item");
            methods
                .keys()
                .filter(|m| ["get", "post", "patch", "put", "delete"].contains(&m.as_str()))
                .map(move |method| (path.clone(), method.to_uppercase()))
        })
        .collect()
}

#[test]
fn the_description_lists_exactly_the_routes_the_service_answers() {
    let doc = serde_json::to_value(app::openapi()).expect("serializable");
    let documented = operations(&doc);
    let served: BTreeSet<(String, String)> = app::routes()
        .into_iter()
        .map(|(path, method)| (path.to_owned(), method.to_string()))
        .collect();
    assert_eq!(documented, served, "documented vs served routes");
    assert_eq!(doc["openapi"].as_str().map(|v| v.starts_with("3.")), Some(true));
    for code in ["ErrorCode", "ErrorResponse"] {
        assert!(doc["components"]["schemas"][code].is_object(), "schema {code}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_json_and_swagger_ui_are_served_offline() {
    let app = Application::build(&test_config(Backend::Memory).await).await.expect("builds");
    let base = format!("http://{}", app.address());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");

    let doc: Value = client
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("JSON");
    assert_eq!(operations(&doc).len(), app::routes().len());

    let redirect = client.get(format!("{base}/docs")).send().await.expect("answer");
    assert_eq!(redirect.status(), StatusCode::PERMANENT_REDIRECT);
    let page = client.get(format!("{base}/docs/")).send().await.expect("answer");
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("HTML");
    assert!(html.contains("swagger-ui"), "{html}");
    let script =
        client.get(format!("{base}/docs/swagger-ui-bundle.js")).send().await.expect("answer");
    assert_eq!(script.status(), StatusCode::OK, "the UI's code is served by mall itself");
    let config =
        client.get(format!("{base}/docs/swagger-initializer.js")).send().await.expect("answer");
    assert!(config.text().await.expect("text").contains("/openapi.json"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_routed() {
    let app = Application::build(&test_config(Backend::Memory).await).await.expect("builds");
    let base = format!("http://{}", app.address());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    let client = reqwest::Client::new();
    let doc = serde_json::to_value(app::openapi()).expect("serializable");
    for (path, method) in operations(&doc) {
        let concrete = path.replace("{user_id}", "alice").replace("{product_id}", "1");
        let method: reqwest::Method = method.parse().expect("method");
        let response = client
            .request(method.clone(), format!("{base}{concrete}"))
            .json(&serde_json::json!({}))
            .send()
            .await
            .expect("answer");
        let status = response.status();
        let body = response.text().await.expect("body");
        assert!(
            !body.contains("no such route") && status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {status} {body}"
        );
    }
}

/// Numbers in paths and query strings are digits only, no leading zero; the description says so.
#[test]
fn numeric_parameters_declare_their_pattern() {
    let doc = serde_json::to_value(app::openapi()).expect("serializable");
    let parameter = |path: &str, method: &str, name: &str| -> Value {
        doc["paths"][path][method]["parameters"]
            .as_array()
            .and_then(|all| all.iter().find(|p| p["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("{method} {path} declares {name}"))
    };
    for method in ["get", "patch"] {
        let id = parameter("/product/{product_id}", method, "product_id");
        assert_eq!(id["schema"]["pattern"], "^[1-9][0-9]*$", "{id}");
        assert_eq!(id["schema"]["minimum"], 1, "{id}");
    }
    for name in ["offset", "limit"] {
        let page = parameter("/product", "get", name);
        assert_eq!(page["schema"]["pattern"], "^(0|[1-9][0-9]*)$", "{page}");
    }
}
