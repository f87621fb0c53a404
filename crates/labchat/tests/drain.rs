//! The drain of a real `labchat` process, with real signals and real websockets: SIGTERM (or
//! `POST /drain` on the operations listener, never on the chat one) turns `/readyz` to 503 at
//! once, keeps serving for `--drain-delay`, closes the clients with 1012 spread over
//! `--drain-window`, each after the frames queued for it, and exits; a second SIGTERM stops at once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const WAIT: Duration = Duration::from_secs(10);

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

struct Demo {
    child: Child,
    addr: String,
    request_id: String,
    teacher: String,
}

async fn start(extra: &[&str]) -> Demo {
    let mut child = Command::new(env!("CARGO_BIN_EXE_labchat"))
        .args(["serve", "--demo", "--listen", "127.0.0.1:0", "--log-format", "json", "--shutdown-grace", "5s"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start labchat");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut addr, mut request_id, mut teacher) = (None, None, None);
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let field = |prefix: &str| line.trim().strip_prefix(prefix).map(|v| v.trim().to_owned());
            if let Some(v) = field("request id:") {
                request_id = Some(v);
            } else if let Some(v) = field("TEACHER token:") {
                teacher = Some(v);
            } else if let Some(rest) = line.strip_prefix("labchat demo is running on ws://") {
                addr = rest.split('/').next().map(str::to_owned);
            }
            if addr.is_some() && request_id.is_some() && teacher.is_some() {
                break;
            }
        }
    };
    tokio::time::timeout(WAIT, read).await.expect("demo output within 10 s");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Demo { child, addr: addr.unwrap(), request_id: request_id.unwrap(), teacher: teacher.unwrap() }
}

impl Demo {
    fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("running").to_string();
        assert!(std::process::Command::new("kill").args([signal, &pid]).status().unwrap().success());
    }

    async fn client(&self) -> Ws {
        let mut req = format!("ws://{}/ws", self.addr).into_client_request().unwrap();
        req.headers_mut().insert("Authorization", HeaderValue::from_str(&format!("Bearer {}", self.teacher)).unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        send(&mut ws, json!({"event":"joinRoom","data":{"requestId":self.request_id},"id":1})).await;
        until(&mut ws, |v| v["event"] == "ack" && v["id"] == 1).await;
        ws
    }

    async fn exits_within(&mut self, wait: Duration) {
        let status = tokio::time::timeout(wait, self.child.wait()).await.expect("the process exits").unwrap();
        assert!(status.success(), "{status}");
    }
}

async fn send(ws: &mut Ws, frame: Value) {
    ws.send(Message::text(frame.to_string())).await.unwrap();
}

async fn until(ws: &mut Ws, want: impl Fn(&Value) -> bool) -> Value {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next()).await.expect("a frame within 10 s").unwrap().unwrap();
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).unwrap();
            if want(&v) {
                return v;
            }
        }
    }
}

/// Reads until the close frame: the seqs of the `message` frames before it, and its code.
async fn read_to_close(ws: &mut Ws) -> (Vec<u64>, u16) {
    let mut seqs = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(30), ws.next()).await.expect("a close within 30 s") {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["event"] == "message" {
                    seqs.push(v["data"]["seq"].as_u64().unwrap());
                }
            }
            Some(Ok(Message::Close(Some(f)))) => return (seqs, u16::from(f.code)),
            Some(Ok(_)) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

/// One HTTP/1.1 request: the status code.
async fn http(addr: &str, method: &str, path: &str) -> u16 {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = String::new();
    tokio::time::timeout(WAIT, s.read_to_string(&mut raw)).await.unwrap().unwrap();
    raw.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

#[tokio::test]
async fn sigterm_turns_readyz_503_at_once_then_closes_clients_with_1012_over_the_window_after_their_frames() {
    let (delay, window, n) = (Duration::from_secs(2), Duration::from_secs(4), 8);
    let mut demo = start(&["--drain-delay", "2s", "--drain-window", "4s"]).await;
    let mut clients = Vec::new();
    for _ in 0..n {
        clients.push(demo.client().await);
    }
    let mut poster = clients.pop().unwrap();
    assert_eq!(http(&demo.addr, "GET", "/readyz").await, 200);
    let t0 = Instant::now();
    demo.signal("-TERM");
    let mut flipped = None;
    while t0.elapsed() < Duration::from_secs(1) {
        if http(&demo.addr, "GET", "/readyz").await == 503 {
            flipped = Some(t0.elapsed());
            break;
        }
    }
    assert!(flipped.is_some(), "/readyz did not answer 503 within 1 s of SIGTERM");
    // The node keeps serving during the delay: 20 posts, each acknowledged.
    for i in 0..20 {
        let id = 100 + i;
        send(
            &mut poster,
            json!({"event":"message","data":{"requestId":demo.request_id,"message":format!("m{i}")},"id":id}),
        )
        .await;
        until(&mut poster, |v| v["event"] == "ack" && v["id"] == id).await;
    }
    assert!(t0.elapsed() < delay, "the posts took the whole delay; the test proves nothing");
    let readers = clients.into_iter().map(|mut ws| {
        tokio::spawn(async move {
            let (seqs, code) = read_to_close(&mut ws).await;
            (seqs, code, t0.elapsed())
        })
    });
    let mut closed_at = Vec::new();
    for r in readers {
        let (seqs, code, at) = r.await.unwrap();
        assert_eq!(code, 1012);
        assert_eq!(seqs, (1..=20).collect::<Vec<_>>(), "every message before the close frame, in order");
        closed_at.push(at);
    }
    let (mut poster_seqs, poster_code) = read_to_close(&mut poster).await;
    poster_seqs.clear();
    assert_eq!(poster_code, 1012);
    closed_at.sort();
    let (first, last) = (closed_at[0], closed_at[closed_at.len() - 1]);
    assert!(first >= delay - Duration::from_millis(100), "closed before the drain delay: {closed_at:?}");
    // 8 connections over 4 s: one every 0.5 s, the last 3.5 s after the first.
    assert!(last - first >= Duration::from_millis(2500), "not spread over the window: {closed_at:?}");
    assert!(last <= delay + window + Duration::from_secs(2), "later than the window: {closed_at:?}");
    demo.exits_within(WAIT).await;
}

#[tokio::test]
async fn a_second_sigterm_during_a_drain_stops_at_once() {
    let mut demo = start(&["--drain-delay", "30s", "--drain-window", "30s"]).await;
    let mut ws = demo.client().await;
    demo.signal("-TERM");
    let t0 = Instant::now();
    while http(&demo.addr, "GET", "/readyz").await != 503 {
        assert!(t0.elapsed() < WAIT, "/readyz never answered 503");
    }
    demo.signal("-TERM");
    let (_, code) = read_to_close(&mut ws).await;
    assert_eq!(code, 1012);
    demo.exits_within(Duration::from_secs(5)).await;
    assert!(t0.elapsed() < Duration::from_secs(10), "stopped after {:?}, not at once", t0.elapsed());
}

#[tokio::test]
async fn post_drain_is_served_by_the_ops_listener_only() {
    let ops = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let mut demo = start(&["--ops-listen", &ops, "--drain-delay", "1s", "--drain-window", "0s"]).await;
    let mut ws = demo.client().await;
    assert_eq!(http(&demo.addr, "POST", "/drain").await, 404, "the chat listener has no /drain");
    assert_eq!(http(&demo.addr, "GET", "/readyz").await, 200, "a refused /drain drains nothing");
    assert_eq!(http(&ops, "GET", "/drain").await, 404, "only POST drains");
    assert_eq!(http(&ops, "GET", "/readyz").await, 200);
    assert_eq!(http(&ops, "POST", "/drain").await, 202);
    assert_eq!(http(&ops, "GET", "/readyz").await, 503);
    assert_eq!(http(&demo.addr, "GET", "/readyz").await, 503);
    let (_, code) = read_to_close(&mut ws).await;
    assert_eq!(code, 1012);
    demo.exits_within(WAIT).await;
}
