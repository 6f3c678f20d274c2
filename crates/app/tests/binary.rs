//! The `mall` binary as an operator meets it: `--help`, bad settings, and SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MALL: &str = env!("CARGO_BIN_EXE_mall");

fn mall() -> Command {
    let mut command = Command::new(MALL);
    for var in
        ["MALL_BIND", "DATABASE_URL", "MALL_ADMIN_TOKEN", "MALL_DATA_PLATFORM_URL", "MALL_DEMO"]
    {
        command.env_remove(var);
    }
    command
}

#[test]
fn help_lists_every_setting_of_spec_section_4() {
    let output = mall().arg("--help").output().expect("mall runs");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for var in [
        "MALL_BIND",
        "DATABASE_URL",
        "MALL_ORDER_TTL_SECS",
        "MALL_ADMIN_TOKEN",
        "MALL_DATA_PLATFORM_URL",
        "MALL_RANKING_DAYS",
        "MALL_RANKING_SIZE",
    ] {
        assert!(help.contains(var), "--help does not mention {var}:\n{help}");
    }
}

#[test]
fn bad_settings_stop_it_with_a_clear_message() {
    let output = mall().env("MALL_ORDER_TTL_SECS", "0").output().expect("mall runs");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("order-ttl-secs"));

    let output = mall().env("MALL_DB_STATEMENT_TIMEOUT_MS", "10000").output().expect("mall runs");
    assert!(!output.status.success(), "a statement limit equal to the request limit");
    assert!(String::from_utf8_lossy(&output.stderr).contains("must be below MALL_REQUEST_TIMEOUT"));

    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let address = taken.local_addr().expect("address").to_string();
    let output = mall().env("MALL_BIND", &address).output().expect("mall runs");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot listen on"));
}

#[test]
fn a_bad_or_unreachable_database_stops_it_with_a_clear_message() {
    let output = mall().env("DATABASE_URL", "postgres://localhost/mall").output().expect("runs");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("must be a mysql:// URL"));

    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr());
    let url = format!("mysql://mall:secret@127.0.0.1:{}/mall", port.expect("a free port").port());
    let started = Instant::now();
    let output = mall()
        .env("DATABASE_URL", &url)
        .env("MALL_DB_CONNECT_TIMEOUT_SECS", "1")
        .env("MALL_BIND", "127.0.0.1:0")
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot reach the database"), "{stderr}");
    assert!(!stderr.contains("secret"), "the password is not printed: {stderr}");
    assert!(started.elapsed() < Duration::from_secs(20), "it gives up when told to");
}

#[test]
fn sigterm_stops_it_gracefully() {
    let mut child = mall()
        .env("MALL_BIND", "127.0.0.1:0")
        .env("MALL_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("mall starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let listening = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|line| line.contains("listening on"))
        .expect("mall says where it listens");
    assert!(listening.starts_with('{'), "JSON log lines: {listening}");

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    assert!(status.expect("kill runs").success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = child.try_wait().expect("wait") {
            break exit;
        }
        assert!(Instant::now() < deadline, "mall did not stop within 10 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "a graceful stop exits 0, got {exit}");
    assert!(lines.map_while(Result::ok).any(|line| line.contains("stopped")));
}

#[test]
fn json_logs_carry_the_request_id_and_the_user() {
    let mut child = mall()
        .env("MALL_BIND", "127.0.0.1:0")
        .env("MALL_LOG_FORMAT", "json")
        .env("MALL_ADMIN_TOKEN", "a-secret-that-must-never-be-logged")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("mall starts");
    let mut lines =
        BufReader::new(child.stdout.take().expect("stdout")).lines().map_while(Result::ok);
    let listening = lines.by_ref().find(|line| line.contains("listening on")).expect("started");
    let entry: serde_json::Value = serde_json::from_str(&listening).expect("JSON");
    let address = entry["address"].as_str().expect("an address").to_owned();

    let response = reqwest::blocking::Client::new()
        .get(format!("http://{address}/user/alice/point"))
        .header("X-Request-Id", "probe-7")
        .bearer_auth("a-secret-that-must-never-be-logged")
        .send()
        .expect("answer");
    assert_eq!(
        response.headers().get("x-request-id").and_then(|v| v.to_str().ok()),
        Some("probe-7")
    );
    let line = lines.find(|line| line.contains("probe-7")).expect("the request's log line");
    let _ = child.kill();
    let _ = child.wait();
    let entry: serde_json::Value = serde_json::from_str(&line).expect("JSON");
    assert_eq!(entry["span"]["request_id"], "probe-7", "{line}");
    assert_eq!(entry["span"]["route"], "/user/{user_id}/point", "{line}");
    assert_eq!(entry["span"]["user"], "alice", "{line}");
    assert_eq!(entry["status"], 404, "{line}");
    assert!(!line.contains("a-secret-that-must-never-be-logged"));
}

#[test]
fn a_data_platform_url_it_cannot_use_stops_it_naming_what_it_takes() {
    for (url, expected) in [
        ("https://platform.example/events", "must be http://… (events are POSTed"),
        ("kafka://broker:9092/payments", "nats://host:port/<subject>"),
        ("nats://127.0.0.1:4222", "names no subject"),
    ] {
        let output = mall().env("MALL_DATA_PLATFORM_URL", url).output().expect("mall runs");
        assert!(!output.status.success(), "{url} is refused");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{url}: {stderr}");
    }
}
