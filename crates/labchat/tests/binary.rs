//! The `labchat` binary itself: `serve --demo` prints working tokens, SIGTERM drains it (1012 to
//! clients; the drain's timing is in `drain.rs`) and SIGINT stops it (1001), both exit 0, and its logs carry one line per connection open and close
//! but never a token or a message body.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const WAIT: Duration = Duration::from_secs(10);

struct Demo {
    child: Child,
    url: String,
    request_id: String,
    teacher: String,
}

async fn start_demo(extra: &[&str]) -> Demo {
    let mut child = Command::new(env!("CARGO_BIN_EXE_labchat"))
        .args(["serve", "--demo", "--listen", "127.0.0.1:0", "--log-format", "json", "--shutdown-grace", "5s"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start labchat");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut url, mut request_id, mut teacher) = (None, None, None);
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let field = |prefix: &str| line.trim().strip_prefix(prefix).map(|v| v.trim().to_owned());
            if let Some(v) = field("request id:") {
                request_id = Some(v);
            } else if let Some(v) = field("TEACHER token:") {
                teacher = Some(v);
            } else if let Some(rest) = line.strip_prefix("labchat demo is running on ") {
                url = rest.split_whitespace().next().map(str::to_owned);
            }
            if url.is_some() && request_id.is_some() && teacher.is_some() {
                break;
            }
        }
    };
    tokio::time::timeout(WAIT, read).await.expect("demo output within 10 s");
    // Keep reading, as a terminal would: the rest of the instructions must not hit a closed pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Demo { child, url: url.unwrap(), request_id: request_id.unwrap(), teacher: teacher.unwrap() }
}

fn kill(child: &Child, signal: &str) {
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill").args([signal, &pid]).status().expect("run kill");
    assert!(status.success());
}

#[tokio::test]
async fn sigterm_drains_with_1012_sigint_closes_with_1001_both_exit_0_and_logs_keep_secrets_out() {
    for (signal, expected) in [("-TERM", 1012), ("-INT", 1001)] {
        let mut demo = start_demo(&["--drain-delay", "0s", "--drain-window", "0s"]).await;
        let mut req = demo.url.as_str().into_client_request().unwrap();
        req.headers_mut().insert("Authorization", HeaderValue::from_str(&format!("Bearer {}", demo.teacher)).unwrap());
        let (mut ws, _) = match tokio_tungstenite::connect_async(req).await {
            Ok(ok) => ok,
            Err(e) => {
                let _ = demo.child.start_kill();
                let mut logs = String::new();
                demo.child.stderr.take().unwrap().read_to_string(&mut logs).await.unwrap();
                panic!("{signal}: the demo token should work, got {e}; server logs:\n{logs}");
            }
        };
        let body = format!("confidential body {}", std::process::id());
        for frame in [
            json!({"event":"joinRoom","data":{"requestId":demo.request_id},"id":1}),
            json!({"event":"message","data":{"requestId":demo.request_id,"message":body},"id":2}),
        ] {
            ws.send(Message::text(frame.to_string())).await.unwrap();
        }
        // Wait for the message's ack: it is stored.
        loop {
            let msg = tokio::time::timeout(WAIT, ws.next()).await.unwrap().unwrap().unwrap();
            let v: Value = serde_json::from_str(msg.to_text().unwrap()).unwrap();
            if v["event"] == "ack" && v["id"] == 2 {
                assert_eq!(v["data"]["message"], body.as_str());
                break;
            }
        }

        kill(&demo.child, signal);
        let code = loop {
            match tokio::time::timeout(WAIT, ws.next()).await.expect("close within 10 s") {
                Some(Ok(Message::Close(Some(f)))) => break u16::from(f.code),
                Some(Ok(_)) => {}
                other => panic!("{signal}: expected a close frame, got {other:?}"),
            }
        };
        assert_eq!(code, expected, "{signal}");
        let status = tokio::time::timeout(WAIT, demo.child.wait()).await.expect("exit within 10 s").unwrap();
        assert!(status.success(), "{signal}: {status}");

        let mut logs = String::new();
        demo.child.stderr.take().unwrap().read_to_string(&mut logs).await.unwrap();
        assert!(!logs.contains(&demo.teacher), "{signal}: a token reached the logs");
        assert!(!logs.contains(&body), "{signal}: a message body reached the logs");
        let events: Vec<Value> = logs.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        assert!(!events.is_empty(), "{signal}: json logs expected, got {logs}");
        let find = |msg: &str| {
            events.iter().find(|e| e["fields"]["message"] == msg).unwrap_or_else(|| panic!("no {msg:?} in {logs}"))
        };
        let opened = find("connection opened");
        assert_eq!(opened["fields"]["user_id"], "teacher-demo");
        assert_eq!(opened["fields"]["role"], "TEACHER");
        let closed = find("connection closed");
        for field in ["user_id", "role", "peer", "duration_ms", "frames_in", "frames_out"] {
            assert!(!closed["fields"][field].is_null(), "{signal}: connection closed lacks {field}: {closed}");
        }
        assert_eq!(closed["fields"]["frames_in"], 2);
        assert_eq!(closed["fields"]["close_code"], expected);
        let name = if signal == "-TERM" { "SIGTERM received: draining" } else { "SIGINT received: stopping" };
        find(name);
    }
}

#[tokio::test]
async fn invalid_configuration_fails_at_start_naming_the_setting() {
    for (args, needle) in [
        (vec!["serve", "--demo", "--history-limit", "0"], "--history-limit"),
        (vec!["serve", "--listen", "nowhere"], "--listen"),
        (vec!["serve", "--jwt-secret", "short"], "16 bytes"),
        (vec!["serve"], "--jwt-secret"),
        (vec!["serve", "--demo", "--ping-interval", "soon"], "--ping-interval"),
        (vec!["token", "--sub", "u", "--role", "STUDENT", "--jwt-secret", "0123456789abcdef"], "STUDENT"),
    ] {
        let out = tokio::time::timeout(WAIT, Command::new(env!("CARGO_BIN_EXE_labchat")).args(&args).output())
            .await
            .unwrap()
            .unwrap();
        assert!(!out.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}
