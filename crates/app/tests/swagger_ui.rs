//! Swagger UI in a real browser: headless Chromium opens `/docs/`, sees every operation, runs
//! one "Try it out" call against the live service, and takes a screenshot — with nothing
//! fetched from outside the service. Needs Debian's `chromium` and `npm ci` in
//! `tests/browser` (both done by `make deps`).

mod common;

use std::path::PathBuf;
use std::process::Command;

use app::Application;
use common::{test_config, Backend};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_ui_lists_every_operation_and_tries_one_out() {
    let browser_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir()
            && std::path::Path::new("/usr/bin/chromium").exists(),
        "\n*** The browser test needs Debian's chromium and `npm ci` in {}: run `make deps`.\n",
        browser_dir.display()
    );
    let mut config = test_config(Backend::Memory).await;
    config.demo = true;
    let app = Application::build(&config).await.expect("builds");
    let base = format!("http://{}", app.address());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    let client = reqwest::Client::new();
    let items = json!([{"product_id": 2, "count": 2}, {"product_id": 4, "count": 1}]);
    client.post(format!("{base}/order/demo")).json(&items).send().await.expect("order");
    client.post(format!("{base}/order/demo/pay")).json(&items).send().await.expect("pay");

    let screenshot = std::env::var("MALL_SCREENSHOT").map_or_else(
        |_| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("swagger-ui.png"),
        PathBuf::from,
    );
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .current_dir(&browser_dir)
            .args(["swagger.mjs", &base])
            .arg(&screenshot)
            .output()
            .map(|output| (output, screenshot))
    })
    .await
    .expect("task")
    .expect("node runs");
    let (output, screenshot) = output;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let seen: Value = serde_json::from_slice(&output.stdout).expect("one JSON line");

    let shown: Vec<String> = seen["operations"]
        .as_array()
        .expect("operations")
        .iter()
        .map(|o| o.as_str().unwrap_or_default().to_owned())
        .collect();
    for (path, method) in app::routes() {
        let operation = format!("{method} {path}");
        assert!(shown.contains(&operation), "Swagger UI does not show {operation}: {shown:?}");
    }
    assert_eq!(seen["status"], "200", "{seen}");
    let answer: Value =
        serde_json::from_str(seen["answer"].as_str().unwrap_or("null")).expect("the live answer");
    assert_eq!(answer["errorcode"], 0);
    assert_eq!(answer["products"][0]["sold"], 2, "the best seller of the purchase above: {answer}");
    assert_eq!(seen["external"], json!([]), "nothing is fetched from outside mall");
    assert!(std::fs::metadata(&screenshot).is_ok_and(|m| m.len() > 10_000), "a screenshot");
}
