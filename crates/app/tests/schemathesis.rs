//! The published contract is the server: schemathesis (pinned in `fuzz/requirements.txt`,
//! installed into `.venv-fuzz/` by `make test`) reads `/openapi.json` and runs every phase —
//! examples, coverage, fuzzing and stateful (following the document's links) — with every
//! check, against the real application on each store, with the admin token. It must find
//! nothing. The settings and the one check adjusted are in `fuzz/schemathesis.toml` and
//! `fuzz/hooks.py` (why: docs/adr/0008-schema-driven-testing.md).
//!
//! A fixed seed here; `make fuzz` runs the same with a random one and more examples
//! (`MALL_FUZZ_SEED`, `MALL_FUZZ_MAX_EXAMPLES`).

mod common;

use std::path::PathBuf;
use std::process::Command;

use app::Application;
use common::{test_config, Backend};

const TOKEN: &str = "schemathesis-admin-token";
const SEED: &str = "20261203";
const MAX_EXAMPLES: &str = "150";

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The venv's `schemathesis`, or a failure saying how to install it.
fn schemathesis() -> PathBuf {
    let bin = workspace().join(".venv-fuzz/bin/schemathesis");
    assert!(
        bin.exists(),
        "\n*** schemathesis is not installed ({} is missing): run `make fuzz-deps` (make test \
         does).\n",
        bin.display()
    );
    bin
}

async fn schemathesis_finds_nothing(backend: Backend) {
    let bin = schemathesis();
    let mut config = test_config(backend).await;
    config.admin_token = Some(TOKEN.to_owned());
    let app = Application::build(&config).await.expect("builds");
    let base = format!("http://{}", app.address());
    tokio::spawn(app.run_until_stopped(std::future::pending()));

    let seed = std::env::var("MALL_FUZZ_SEED").unwrap_or_else(|_| SEED.to_owned());
    let examples =
        std::env::var("MALL_FUZZ_MAX_EXAMPLES").unwrap_or_else(|_| MAX_EXAMPLES.to_owned());
    let args = [
        "--config-file",
        "schemathesis.toml",
        "--no-color",
        "run",
        &format!("{base}/openapi.json"),
        "--header",
        &format!("Authorization: Bearer {TOKEN}"),
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--seed",
        &seed,
        "--max-examples",
        &examples,
        "--generation-database",
        "none",
    ]
    .map(str::to_owned);
    let output = tokio::task::spawn_blocking(move || {
        Command::new(bin).current_dir(workspace().join("fuzz")).args(args).output()
    })
    .await
    .expect("task")
    .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary = stdout.lines().rev().find(|line| line.starts_with("====")).unwrap_or_default();
    println!("schemathesis on {backend:?}, seed {seed}, {examples} examples: {summary}");
    assert!(
        output.status.success(),
        "schemathesis found failures on {backend:?} (seed {seed}; `make fuzz` with \
         MALL_FUZZ_SEED={seed} runs it again):\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("Stateful"), "the stateful phase ran:\n{stdout}");
}

on_both_stores!(schemathesis_finds_nothing);
