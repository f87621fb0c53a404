//! Every metric name deploy/prometheus/alerts.yml uses is served by a real node's `/metrics`: a
//! `labchat` process with MongoDB and Redis, after a join, a post and a close.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use labchat_tests::client::handshake_bearer;
use labchat_tests::harness::token;
use labchat_tests::multinode::Cluster;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// The metric names in the rules' expressions, histogram suffixes dropped.
fn alert_metric_names() -> BTreeSet<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus/alerts.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut names = BTreeSet::new();
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#') && !l.contains("summary:")) {
        let mut rest = line;
        while let Some(at) = rest.find("labchat_") {
            let tail = &rest[at..];
            let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
            let name = &tail[..end];
            let base = ["_bucket", "_count", "_sum"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
            names.insert(base.to_owned());
            rest = &tail[end..];
        }
    }
    names
}

async fn scrape(addr: std::net::SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut raw)).await.unwrap().unwrap();
    raw
}

#[tokio::test]
async fn every_metric_the_alerts_use_is_served_by_a_real_node() {
    let names = alert_metric_names();
    assert!(names.len() >= 3, "the rules name too few metrics: {names:?}");
    let cluster = Cluster::start("deploy_alerts", 1).await;
    let node = &cluster.nodes[0];
    let request = cluster.add_request("teacher-alerts").await;
    let (mut ws, _) = handshake_bearer(&node.url(), &token("teacher-alerts", "TEACHER")).await.unwrap();
    for frame in [
        json!({"event":"joinRoom","data":{"requestId":request.to_string()},"id":1}),
        json!({"event":"message","data":{"requestId":request.to_string(),"message":"hello"},"id":2}),
    ] {
        ws.send(Message::text(frame.to_string())).await.unwrap();
    }
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap().unwrap().unwrap();
        let Message::Text(t) = msg else { continue };
        let v: Value = serde_json::from_str(&t).unwrap();
        if v["event"] == "ack" && v["id"] == 2 {
            break;
        }
    }
    ws.close(None).await.unwrap();
    while let Some(Ok(_)) = ws.next().await {}
    let mut missing = names.clone();
    for _ in 0..50 {
        let text = scrape(node.addr()).await;
        missing.retain(|n| {
            !text.lines().any(|l| {
                l.starts_with(&format!("{n} "))
                    || l.starts_with(&format!("{n}{{"))
                    || l.starts_with(&format!("{n}_bucket{{"))
            })
        });
        if missing.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("/metrics lacks {missing:?} (the alerts use {names:?}); logs:\n{}", cluster.logs());
}
