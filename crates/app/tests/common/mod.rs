//! Test helpers shared by the app's integration tests: a fake data platform and the `mall`
//! binary as a child process.

#![allow(dead_code)] // each test file uses a different part

pub mod receiver;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use app::Config;
use serde_json::Value;

/// Which store an in-process scenario runs on.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Memory,
    Mysql,
}

/// The defaults, listening on a free port, on `backend` (a fresh database for MySQL), with no
/// data platform.
pub async fn test_config(backend: Backend) -> Config {
    let mut config = Config::defaults();
    config.bind = "127.0.0.1:0".into();
    config.data_platform_url = None;
    config.database_url = match backend {
        Backend::Memory => None,
        Backend::Mysql => Some(
            tokio::task::spawn_blocking(store_mysql::testing::fresh_database_url)
                .await
                .expect("a fresh database"),
        ),
    };
    config
}

/// Expands `async fn scenario(backend: Backend)` functions into one test per store.
#[macro_export]
macro_rules! on_both_stores {
    ($($scenario:ident),+ $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $scenario() {
                    super::$scenario($crate::common::Backend::Memory).await;
                }
            )+
        }
        mod mysql {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $scenario() {
                    super::$scenario($crate::common::Backend::Mysql).await;
                }
            )+
        }
    };
}

/// One request the fake platform received.
#[derive(Debug, Clone)]
pub struct Received {
    pub idempotency_key: Option<String>,
    pub content_type: Option<String>,
    pub body: Value,
    pub at: Instant,
}

#[derive(Default)]
struct PlatformState {
    received: Mutex<Vec<Received>>,
    /// Statuses to answer, in order; 204 once they run out.
    script: Mutex<VecDeque<u16>>,
}

/// A data platform on a local port, in its own thread and actix system.
pub struct FakePlatform {
    pub url: String,
    state: Arc<PlatformState>,
    handle: actix_web::dev::ServerHandle,
}

async fn receive(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<PlatformState>,
) -> HttpResponse {
    let header =
        |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let received = Received {
        idempotency_key: header("idempotency-key"),
        content_type: header("content-type"),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        at: Instant::now(),
    };
    state.received.lock().expect("lock").push(received);
    let status = state.script.lock().expect("lock").pop_front().unwrap_or(204);
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status")).finish()
}

impl FakePlatform {
    /// Starts on a free port, answering `script` in order and then 204.
    pub fn start(script: &[u16]) -> Self {
        Self::start_on(TcpListener::bind("127.0.0.1:0").expect("a free port"), script)
    }

    /// Starts on a port chosen earlier with [`closed_port`].
    pub fn start_on_port(port: u16, script: &[u16]) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("the port is still free");
        Self::start_on(listener, script)
    }

    pub fn start_on(listener: TcpListener, script: &[u16]) -> Self {
        let url = format!("http://{}/events", listener.local_addr().expect("address"));
        let state = Arc::new(PlatformState {
            received: Mutex::default(),
            script: Mutex::new(script.iter().copied().collect()),
        });
        let data = web::Data::from(state.clone());
        let (handle_tx, handle_rx) = mpsc::channel();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    App::new().app_data(data.clone()).route("/events", web::post().to(receive))
                })
                .workers(1)
                .disable_signals()
                .listen(listener)
                .expect("listen")
                .run();
                handle_tx.send(server.handle()).expect("send the handle");
                server.await.expect("the fake platform runs");
            });
        });
        let handle = handle_rx.recv_timeout(Duration::from_secs(10)).expect("the platform starts");
        Self { url, state, handle }
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().expect("lock").clone()
    }

    /// Waits until at least `count` requests arrived, and returns them.
    pub fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {count} deliveries arrived",
                received.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for FakePlatform {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

/// A port nothing listens on: connections to it are refused until a platform starts on it.
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("address").port()
}

pub const MALL: &str = env!("CARGO_BIN_EXE_mall");
pub const TOKEN: &str = "binary-test-token";

/// A running `mall` process with a clean environment.
pub struct Server {
    child: Child,
    pub base: String,
}

impl Server {
    pub fn start(env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(MALL);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("MALL_BIND", "127.0.0.1:0")
            .env("MALL_ADMIN_TOKEN", TOKEN)
            .env("MALL_LOG_FORMAT", "json")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("mall starts");
        let stdout = child.stdout.take().expect("stdout");
        let (address_tx, address_rx) = mpsc::channel();
        // Keep draining the log so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(entry) = serde_json::from_str::<Value>(&line) {
                    if let Some(address) = entry["address"].as_str() {
                        let _ = address_tx.send(address.to_owned());
                    }
                }
            }
        });
        let address =
            address_rx.recv_timeout(Duration::from_secs(60)).expect("mall says where it listens");
        Self { child, base: format!("http://{address}") }
    }

    pub fn kill_9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }

    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let client = reqwest::blocking::Client::new();
        let mut request = client
            .request(method.parse().expect("method"), format!("{}{path}", self.base))
            .bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().expect("the server answers");
        let status = response.status().as_u16();
        (status, response.json().expect("a JSON body"))
    }

    pub fn get(&self, path: &str) -> Value {
        let (status, body) = self.call("GET", path, None);
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    pub fn send(&self, method: &str, path: &str, body: Value) -> Value {
        let (status, answer) = self.call(method, path, Some(body));
        assert!((200..300).contains(&status), "{method} {path}: {status} {answer}");
        answer
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
