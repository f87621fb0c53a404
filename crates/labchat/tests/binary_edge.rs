//! The `labchat` binary's edge: `--ops-listen` takes `/metrics` off the chat port, the
//! open-file limit is raised and logged at start, and out of file descriptors the server backs
//! off (one log line per episode, not one per failed accept) and serves again once the
//! handshake deadline frees descriptors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

const WAIT: Duration = Duration::from_secs(10);
const SECRET: &str = "binary-edge-test-secret-0123456789";

/// A running binary and its JSON log events, collected as they come.
struct Running {
    child: Child,
    events: Arc<Mutex<Vec<Value>>>,
}

impl Running {
    /// Starts `labchat serve` (through `sh -c "<prelude>; exec labchat ..."` when a prelude is given).
    fn start(prelude: Option<&str>, args: &[&str]) -> Self {
        let bin = env!("CARGO_BIN_EXE_labchat");
        let mut cmd = match prelude {
            Some(p) => {
                let mut c = Command::new("sh");
                c.arg("-c").arg(format!("{p} && exec \"$0\" \"$@\"")).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let mut child = cmd
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json", "--jwt-secret", SECRET])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start labchat");
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&events);
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let event = serde_json::from_str(&line).unwrap_or_else(|_| Value::String(line));
                sink.lock().unwrap().push(event);
            }
        });
        Self { child, events }
    }

    /// Waits (bounded) for the log event with this message and returns it.
    async fn event(&self, message: &str) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(e) = self.events.lock().unwrap().iter().find(|e| e["fields"]["message"] == message) {
                return e.clone();
            }
            assert!(tokio::time::Instant::now() < deadline, "no {message:?} log within {WAIT:?}: {:?}", self.logs());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn addr(&self, message: &str) -> SocketAddr {
        self.event(message).await["fields"]["addr"].as_str().unwrap().parse().unwrap()
    }

    fn count(&self, message: &str) -> usize {
        self.events.lock().unwrap().iter().filter(|e| e["fields"]["message"] == message).count()
    }

    fn logs(&self) -> Vec<Value> {
        self.events.lock().unwrap().clone()
    }

    /// SIGTERM, then a bounded wait for a clean exit.
    async fn stop(mut self) {
        let pid = self.child.id().expect("running").to_string();
        assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let status = tokio::time::timeout(WAIT, self.child.wait()).await.expect("exit within 10 s").unwrap();
        assert!(status.success(), "{status}");
    }
}

/// `GET path` over raw HTTP/1.1: the status line and the body; `None` without an answer
/// within `within`.
async fn get(addr: SocketAddr, path: &str, within: Duration) -> Option<(String, String)> {
    let exchange = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await.ok()?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.ok()?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n")?;
        Some((head.lines().next()?.to_owned(), body.to_owned()))
    };
    tokio::time::timeout(within, exchange).await.ok().flatten()
}

#[tokio::test]
async fn ops_listen_serves_metrics_apart_and_the_open_file_limit_is_logged() {
    let server = Running::start(None, &["--ops-listen", "127.0.0.1:0"]);
    let limit = server.event("open-file limit").await;
    let (now, hard) = (limit["fields"]["now"].as_u64().unwrap(), limit["fields"]["hard"].as_u64().unwrap());
    assert_eq!(now, hard, "the soft limit is raised to the hard one: {limit}");
    let ops = server.addr("ops listening: /healthz, /readyz, /metrics").await;
    let chat = server.addr("labchat listening").await;
    assert_ne!(ops, chat);

    for addr in [chat, ops] {
        let (status, body) = get(addr, "/healthz", WAIT).await.expect("healthz answers");
        assert!(status.starts_with("HTTP/1.1 200"), "{addr}: {status} {body}");
    }
    let (status, body) = get(ops, "/metrics", WAIT).await.expect("metrics answer");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert!(body.contains("labchat_connections_pending"), "{body}");
    let (status, body) = get(chat, "/metrics", WAIT).await.expect("the chat port answers");
    assert!(status.starts_with("HTTP/1.1 404"), "{status} {body}");
    server.stop().await;
}

#[tokio::test]
async fn out_of_file_descriptors_accept_backs_off_and_serves_again_after_the_deadline() {
    // 64 descriptors, soft and hard: the server cannot raise it, and 150 idle sockets exhaust it.
    let server = Running::start(Some("ulimit -n 64"), &["--handshake-timeout", "1s"]);
    let limit = server.event("open-file limit").await;
    assert_eq!(limit["fields"]["now"].as_u64(), Some(64), "{limit}");
    let chat = server.addr("labchat listening").await;

    let mut idle = Vec::new();
    for _ in 0..150 {
        idle.push(TcpStream::connect(chat).await.unwrap());
    }
    // Accepting fails (EMFILE) until the handshake deadline closes idle sockets; then the
    // backlog drains batch by batch and a probe is answered.
    let answered = get(chat, "/healthz", Duration::from_secs(30)).await;
    let (status, body) = answered.unwrap_or_else(|| panic!("no /healthz answer within 30 s: {:?}", server.logs()));
    assert!(status.starts_with("HTTP/1.1 200"), "{status} {body}");
    let failures = server.count("accept failed; backing off until it works again");
    assert!(failures >= 1, "the descriptors never ran out: {:?}", server.logs());
    let all_lines = server.logs().len();
    assert!(failures <= 20, "{failures} accept-failure lines: one per back-off episode expected");
    assert!(all_lines < 200, "{all_lines} log lines: the accept loop spins");
    drop(idle);
    server.stop().await;
}
