//! Backplane envelope versions and authentication with real `labchat` processes, a real
//! redis-server and the test MongoDB (docs/deployment.md, "Rolling upgrade"; docs/security.md):
//! envelopes of the previous version published straight into Redis reach a websocket member;
//! two nodes writing different versions give every member every event; an unknown version is
//! counted and the node goes on; forged envelopes reach no member, a correctly signed one does.
//!
//! Run it with `scripts/test.sh -p labchat-tests --test multinode -- backplane_versions::` (needs
//! `redis-cli` beside `redis-server`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hmac::{Hmac, Mac};
use labchat_tests::client::Client;
use labchat_tests::harness::{new_request_id, token};
use labchat_tests::multinode::Cluster;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long an event may take to cross nodes.
const DELIVERY: Duration = Duration::from_secs(20);
pub(crate) const SECRET: &str = "the-shared-backplane-secret-of-this-test";

/// A secret file of its own, removed on drop.
pub(crate) struct SecretFile(PathBuf);

impl SecretFile {
    pub(crate) fn new(name: &str, secret: &str) -> Self {
        let path = std::env::temp_dir().join(format!("labchat-{name}-{}.secret", std::process::id()));
        std::fs::write(&path, format!("{secret}\n")).unwrap();
        Self(path)
    }

    pub(crate) fn arg(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for SecretFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `redis-cli PUBLISH labchat:room:<room> <payload>` against the cluster's Redis.
fn publish(cluster: &Cluster, room: &str, payload: &[u8]) {
    let out = std::process::Command::new("redis-cli")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &cluster.redis().port().to_string(),
            "PUBLISH",
            &format!("labchat:room:{room}"),
        ])
        .arg(std::ffi::OsStr::new(std::str::from_utf8(payload).unwrap()))
        .output()
        .expect("run redis-cli (installed with redis-server)");
    assert!(out.status.success(), "redis-cli: {}", String::from_utf8_lossy(&out.stderr));
}

/// `payload` sealed as docs/security.md describes.
fn seal(secret: &str, payload: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(payload);
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    [format!("{{\"mac\":\"{hex}\",").as_bytes(), &payload[1..]].concat()
}

/// A room envelope of version `v`, in the wire form of docs/deployment.md.
fn envelope(v: u64, event: Value) -> Vec<u8> {
    let mut json = json!({"v": v, "origin": "a-node-of-the-test", "event": event});
    if event_seq(&json).is_some() {
        json["seq"] = json["event"]["data"]["seq"].clone();
    }
    serde_json::to_vec(&json).unwrap()
}

fn event_seq(json: &Value) -> Option<u64> {
    (json["event"]["type"] == "messagePosted").then(|| json["event"]["data"]["seq"].as_u64()).flatten()
}

fn message_event(room: &str, id: &str, seq: u64, text: &str) -> Value {
    json!({"type": "messagePosted", "data": {
        "id": id, "requestId": room, "seq": seq, "senderId": "t1", "senderRole": "TEACHER",
        "text": text, "createdAt": 1_700_000_000_000u64, "deliveredTo": []
    }})
}

/// The next frame of `client` that is `event`, skipping others; panics after [`DELIVERY`].
async fn next(client: &mut Client, event: &str, cluster: &Cluster) -> Value {
    let deadline = tokio::time::Instant::now() + DELIVERY;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(frame) = client.try_recv(left).await else {
            panic!("no {event} within {DELIVERY:?}; logs:\n{}", cluster.logs());
        };
        if frame["event"] == event {
            return frame["data"].clone();
        }
    }
}

/// The node's `/metrics` text.
async fn metrics(addr: SocketAddr) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut raw)).await.unwrap().unwrap();
    raw
}

/// The value of the sample of `name` whose labels include `labels`, if any.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?.strip_prefix('{')?;
        let (set, value) = rest.split_once("} ")?;
        labels.iter().all(|want| set.contains(want)).then(|| value.trim().parse().unwrap())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelopes_of_the_previous_version_published_into_redis_reach_a_websocket_member() {
    let cluster = Cluster::start("mn_versions_previous", 1).await;
    let room = cluster.add_request("t1").await.to_hex();
    let mut lab = Client::connect(&cluster.nodes[0].url(), &token("lab-1", "LAB")).await.seeing_presence();
    lab.join(&room).await;
    // Exactly what a node of the previous release publishes (version 2, no MAC).
    let id = new_request_id().to_hex();
    publish(&cluster, &room, &envelope(2, message_event(&room, &id, 1, "from the previous release")));
    let read = json!({"type": "read", "data": {"requestId": room, "userId": "t1", "messages": [id], "at": 5}});
    publish(&cluster, &room, &envelope(2, read));
    let joined = json!({"type": "memberJoined", "data": {"requestId": room, "userId": "t9", "role": "TEACHER"}});
    publish(&cluster, &room, &envelope(2, joined));
    let m = next(&mut lab, "message", &cluster).await;
    assert_eq!(
        (m["message"].as_str(), m["seq"].as_u64(), m["id"].as_str()),
        (Some("from the previous release"), Some(1), Some(id.as_str()))
    );
    let r = next(&mut lab, "messageReads", &cluster).await;
    assert_eq!(r["userId"], "t1", "{r}");
    let j = next(&mut lab, "memberJoined", &cluster).await;
    assert_eq!(j["userId"], "t9", "{j}");
}

/// Every client of `members` but the one at `actor` gets `event` with `userId` (or, for a
/// message, the text) `expected`.
async fn all_but(members: &mut [(&str, Client)], actor: usize, event: &str, expected: &str, cluster: &Cluster) {
    for (i, (who, client)) in members.iter_mut().enumerate() {
        if i == actor {
            continue;
        }
        let data = next(client, event, cluster).await;
        let got = if event == "message" { &data["message"] } else { &data["userId"] };
        assert_eq!(got, expected, "{who}: {event} {data}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_writing_versions_2_and_3_give_every_member_every_event() {
    let secret = SecretFile::new("mixed", SECRET);
    let old = ["--backplane-version", "2", "--backplane-secret-file", secret.arg()];
    let new = ["--backplane-version", "3", "--backplane-secret-file", secret.arg()];
    let cluster = Cluster::start_each("mn_versions_mixed", &[&old, &new]).await;
    let room = cluster.add_request("t1").await.to_hex();
    // Two members on the node writing 2, two on the node writing 3.
    let people = [(0, "t1", "TEACHER"), (0, "lab-a", "LAB"), (1, "lab-b", "LAB"), (1, "lab-c", "LAB")];
    let mut members: Vec<(&str, Client)> = Vec::new();
    for (node, user, role) in people {
        let mut client = Client::connect(&cluster.nodes[node].url(), &token(user, role)).await.seeing_presence();
        client.join(&room).await;
        for (who, earlier) in &mut members {
            assert_eq!(next(earlier, "memberJoined", &cluster).await["userId"], user, "{who} sees {user} join");
        }
        members.push((user, client));
    }
    // Messages from each node.
    members[0].1.post(&room, "written as 2").await;
    all_but(&mut members, 0, "message", "written as 2", &cluster).await;
    members[2].1.post(&room, "written as 3").await;
    all_but(&mut members, 2, "message", "written as 3", &cluster).await;
    let history = members[3].1.call("history", json!({"requestId": room})).await;
    let ids: Vec<Value> = history.iter().find(|f| f["event"] == "roomHistory").unwrap()["data"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].clone())
        .collect();
    assert_eq!(ids.len(), 2, "{history:?}");
    // Receipts from each node.
    members[2].1.ok("ackMessages", json!({"requestId": room, "messages": [ids[0]]})).await;
    all_but(&mut members, 2, "messagesDelivered", "lab-b", &cluster).await;
    members[1].1.ok("readMessages", json!({"requestId": room, "messages": [ids[1]]})).await;
    all_but(&mut members, 1, "messageReads", "lab-a", &cluster).await;
    // Presence from each node: typing and leaving.
    members[0].1.ok("typing", json!({"requestId": room})).await;
    all_but(&mut members, 0, "typing", "t1", &cluster).await;
    members[3].1.ok("typing", json!({"requestId": room})).await;
    all_but(&mut members, 3, "typing", "lab-c", &cluster).await;
    members[3].1.ok("leaveRoom", json!({"requestId": room})).await;
    all_but(&mut members[..3], 3, "memberLeft", "lab-c", &cluster).await;
    for node in &cluster.nodes {
        let text = metrics(node.addr()).await;
        assert_eq!(sample(&text, "labchat_backplane_rejected_total", &[]), None, "{}: nothing refused", node.id());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_version_is_counted_logged_once_and_the_node_goes_on() {
    let cluster = Cluster::start("mn_versions_unknown", 1).await;
    let node = &cluster.nodes[0];
    let room = cluster.add_request("t1").await.to_hex();
    let mut lab = Client::connect(&node.url(), &token("lab-1", "LAB")).await;
    lab.join(&room).await;
    let id = new_request_id().to_hex();
    for v in [4, 4, 4, 7] {
        publish(&cluster, &room, &envelope(v, message_event(&room, &id, 1, "from the future")));
    }
    let mut t = Client::connect(&node.url(), &token("t1", "TEACHER")).await;
    t.post(&room, "still here").await;
    let m = next(&mut lab, "message", &cluster).await;
    assert_eq!((m["message"].as_str(), m["seq"].as_u64()), (Some("still here"), Some(1)), "no envelope of 4 delivered");
    let text = metrics(node.addr()).await;
    let unknown =
        |v: &str| sample(&text, "labchat_backplane_envelopes_unknown_version_total", &[&format!("version=\"{v}\"")]);
    assert_eq!((unknown("4"), unknown("7")), (Some(3.0), Some(1.0)), "{text}");
    let warned = |v: &str| {
        node.logs()
            .lines()
            .filter(|l| {
                l.contains("of a version this node does not read") && l.contains(&format!("\"version\":\"{v}\""))
            })
            .count()
    };
    assert_eq!((warned("4"), warned("7")), (1, 1), "one warning a minute per version:\n{}", node.logs());
    assert_eq!(node.readyz().await.map(|(s, _)| s), Some(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_envelopes_reach_no_member_and_a_correctly_signed_one_does() {
    let secret = SecretFile::new("forged", SECRET);
    let flags = ["--backplane-version", "3", "--backplane-secret-file", secret.arg()];
    let cluster = Cluster::start_each("mn_versions_forged", &[&flags, &flags]).await;
    let room = cluster.add_request("t1").await.to_hex();
    let mut lab = Client::connect(&cluster.nodes[1].url(), &token("lab-1", "LAB")).await;
    lab.join(&room).await;
    let mut t = Client::connect(&cluster.nodes[0].url(), &token("t1", "TEACHER")).await;
    t.post(&room, "real").await;
    assert_eq!(next(&mut lab, "message", &cluster).await["message"], "real", "sealed between the nodes");
    let forged = |text: &str| envelope(3, message_event(&room, &new_request_id().to_hex(), 2, text));
    publish(&cluster, &room, &forged("forged without a MAC"));
    publish(&cluster, &room, &seal("a-secret-the-forger-guessed-wrong", &forged("forged with a wrong MAC")));
    publish(&cluster, &room, &forged("forged as version 2").replace_v(2));
    publish(&cluster, &room, &seal(SECRET, &forged("signed by the test")));
    let m = next(&mut lab, "message", &cluster).await;
    assert_eq!((m["message"].as_str(), m["seq"].as_u64()), (Some("signed by the test"), Some(2)));
    let text = metrics(cluster.nodes[1].addr()).await;
    let rejected = |reason: &str| sample(&text, "labchat_backplane_rejected_total", &[&format!("reason=\"{reason}\"")]);
    assert_eq!((rejected("unsigned"), rejected("bad_mac")), (Some(2.0), Some(1.0)), "{text}");
}

/// Rewrites an encoded envelope's version.
trait ReplaceV {
    fn replace_v(self, v: u64) -> Vec<u8>;
}

impl ReplaceV for Vec<u8> {
    fn replace_v(self, v: u64) -> Vec<u8> {
        let mut json: Value = serde_json::from_slice(&self).unwrap();
        json["v"] = v.into();
        serde_json::to_vec(&json).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seq_hint_far_ahead_moves_no_rooms_sequence_past_the_store() {
    // No secret: an unauthenticated deployment, where anyone on Redis can publish envelopes.
    let cluster = Cluster::start("mn_versions_hint", 2).await;
    let room = cluster.add_request("t1").await.to_hex();
    let mut lab = Client::connect(&cluster.nodes[1].url(), &token("lab-1", "LAB")).await;
    lab.join(&room).await;
    let mut t = Client::connect(&cluster.nodes[0].url(), &token("t1", "TEACHER")).await;
    t.join(&room).await;
    t.post(&room, "one").await;
    assert_eq!(next(&mut lab, "message", &cluster).await["seq"], 1);
    // A forged envelope 1,000 seqs ahead reaches both nodes (their seq hints)...
    publish(&cluster, &room, &envelope(2, message_event(&room, &new_request_id().to_hex(), 1_001, "forged ahead")));
    tokio::time::sleep(Duration::from_millis(300)).await;
    // ...yet the next posts, on both nodes, take the seqs after what the store holds, and the
    // member gets them live.
    t.post(&room, "two").await;
    let mut lab_poster = Client::connect(&cluster.nodes[1].url(), &token("lab-1", "LAB")).await;
    lab_poster.join(&room).await;
    let m = next(&mut lab, "message", &cluster).await;
    assert_eq!((m["message"].as_str(), m["seq"].as_u64()), (Some("two"), Some(2)), "{m}");
    lab_poster.post(&room, "three").await;
    let m = next(&mut lab, "message", &cluster).await;
    assert_eq!((m["message"].as_str(), m["seq"].as_u64()), (Some("three"), Some(3)), "{m}");
    // The sender on node 0 gets the other node's post, with the seq after its own.
    let m = next(&mut t, "message", &cluster).await;
    assert_eq!((m["message"].as_str(), m["seq"].as_u64()), (Some("three"), Some(3)), "{m}");
}
