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
    let doc = app::openapi();
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
    let doc = app::openapi();
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
    let doc = app::openapi();
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

/// Every operation lists what it can answer besides success, each failure status with a schema
/// naming exactly its `errorcode` values; bodies can be malformed, too large or not JSON.
#[test]
fn every_failure_is_listed_with_its_error_codes() {
    let doc = app::openapi();
    let schemas = &doc["components"]["schemas"];
    for (path, method) in operations(&doc) {
        let operation = &doc["paths"][&path][method.to_lowercase()];
        let id = operation["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path}"));
        let responses = operation["responses"].as_object().expect("responses");
        assert!(responses.contains_key("503"), "{id} lists 503");
        if path == "/ready" || path == "/metrics" {
            continue;
        }
        for (status, response) in responses {
            assert!(response["headers"]["X-Request-Id"].is_object(), "{id} {status}");
            if status.starts_with('2') {
                continue;
            }
            let reference = response["content"]["application/json"]["schema"]["$ref"]
                .as_str()
                .unwrap_or_else(|| panic!("{id} {status}: {response}"));
            let name = reference.trim_start_matches("#/components/schemas/");
            let codes = schemas[name]["properties"]["errorcode"]["enum"]
                .as_array()
                .unwrap_or_else(|| panic!("{id} {status}: {name}"));
            assert!(
                !codes.is_empty()
                    && codes.iter().all(|c| (1..=7).contains(&c.as_u64().unwrap_or(0)))
            );
        }
        if operation.get("requestBody").is_some() {
            for status in ["400", "413", "415"] {
                assert!(responses.contains_key(status), "{id} lists {status}");
            }
        }
        let admin = operation["security"] == serde_json::json!([{"bearer": []}]);
        if admin {
            for status in ["401", "403"] {
                assert!(responses.contains_key(status), "{id} lists {status}");
            }
            assert!(responses["401"]["headers"]["WWW-Authenticate"].is_object(), "{id}");
        }
    }
    let charge = &doc["paths"]["/user/{user_id}/charge"]["patch"]["responses"];
    assert_eq!(
        charge["422"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Error1"
    );
    assert_eq!(doc["paths"]["/product"]["get"]["parameters"][0]["schema"]["maximum"], i64::MAX);
}

/// Links name operations and parameters that exist, and walk register → charge → order → pay →
/// ranking.
#[test]
fn links_connect_creators_to_the_calls_that_use_their_ids() {
    let doc = app::openapi();
    let mut by_id = std::collections::BTreeMap::new();
    for (path, method) in operations(&doc) {
        let operation = &doc["paths"][&path][method.to_lowercase()];
        by_id.insert(
            operation["operationId"].as_str().expect("an id").to_owned(),
            operation.clone(),
        );
    }
    assert_eq!(by_id.len(), operations(&doc).len(), "operationIds are unique");
    let mut edges = BTreeSet::new();
    for (source, operation) in &by_id {
        for response in operation["responses"].as_object().expect("responses").values() {
            for link in response["links"].as_object().into_iter().flat_map(|l| l.values()) {
                let target = link["operationId"].as_str().expect("operationId");
                let target_op = by_id.get(target).unwrap_or_else(|| panic!("{source} -> {target}"));
                for name in link["parameters"].as_object().into_iter().flat_map(|p| p.keys()) {
                    let declared = target_op["parameters"]
                        .as_array()
                        .is_some_and(|all| all.iter().any(|p| p["name"] == name.as_str()));
                    assert!(declared, "{source} -> {target}: {name}");
                }
                edges.insert((source.clone(), target.to_owned()));
            }
        }
    }
    for (from, to) in [
        ("register", "charge"),
        ("charge", "order"),
        ("add_product", "order"),
        ("add_product", "product"),
        ("order", "pay"),
        ("pay", "ranked"),
    ] {
        assert!(edges.contains(&(from.to_owned(), to.to_owned())), "{from} -> {to}: {edges:?}");
    }
}

/// A known path with another method: 405 with `Allow`, the operations routes included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_methods_answer_405_with_allow() {
    let app = Application::build(&test_config(Backend::Memory).await).await.expect("builds");
    let base = format!("http://{}", app.address());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    let client = reqwest::Client::new();
    for (method, path, allow) in [
        (reqwest::Method::POST, "/ready", "GET"),
        (reqwest::Method::DELETE, "/metrics", "GET"),
        (reqwest::Method::PUT, "/openapi.json", "GET"),
        (reqwest::Method::TRACE, "/order/alice", "POST, GET"),
    ] {
        let response =
            client.request(method.clone(), format!("{base}{path}")).send().await.expect("answer");
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        let header = response.headers().get("allow").and_then(|v| v.to_str().ok());
        assert_eq!(header, Some(allow), "{method} {path}");
    }
}
