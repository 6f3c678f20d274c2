//! `mall`: run with no arguments, it serves (see `mall --help`).

use std::process::ExitCode;

use app::config::{Command, Config};
use app::{demo, shutdown_signal, telemetry, Application};
use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    telemetry::init(config.log_format);
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "mall stopped with an error");
            eprintln!("mall: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    if config.command == Some(Command::Openapi) {
        println!("{:#}", app::openapi());
        return Ok(());
    }
    if config.command == Some(Command::Migrate) {
        let applied = app::migrate(&config).await?;
        tracing::info!(count = applied.len(), migrations = ?applied, "migrations applied");
        return Ok(());
    }
    let shutdown = shutdown_signal()?;
    let app = Application::build(&config).await?;
    if config.demo {
        let token = app.admin_token().unwrap_or_default();
        println!("{}", demo::banner(&format!("http://{}", app.address()), token));
    }
    app.run_until_stopped(shutdown).await
}
