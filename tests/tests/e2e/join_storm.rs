//! A join storm over real websockets, once on the in-memory store and once on MongoDB: N users
//! join one room at once. The first changes of the interval reach the members one by one
//! (`memberJoined`), the rest in one `membersChanged` per interval; every member ends with the
//! room's whole member list and its count, and receives a bounded number of presence frames,
//! far below the N·(N−1)/2 `memberJoined` of one frame per arrival per member. Every
//! `membersChanged` is validated against docs/asyncapi.yaml.
//!
//! This is a test of behaviour, not of timing: the interval is long (1 s) against the joins, so
//! the storm's shape does not depend on the machine's speed.
//!
//! The MongoDB test needs `LABCHAT_TEST_MONGO_URI`; run it with
//! `scripts/test.sh -p labchat-tests --test e2e -- join_storm::`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use labchat_core::PresenceBurst;
use labchat_tests::asyncapi::Schemas;
use labchat_tests::client::Client;
use labchat_tests::harness::{Backend, TestServer, token};
use serde_json::{Value, json};

/// Joiners.
const N: usize = 30;
/// Changes announced one by one per interval.
const LIMIT: u32 = 3;
const INTERVAL: Duration = Duration::from_secs(1);

#[tokio::test]
async fn memory_a_join_storm_is_coalesced_and_every_member_ends_with_the_whole_room() {
    a_join_storm_is_coalesced_and_every_member_ends_with_the_whole_room(Backend::Memory, "join_storm_memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_a_join_storm_is_coalesced_and_every_member_ends_with_the_whole_room() {
    a_join_storm_is_coalesced_and_every_member_ends_with_the_whole_room(Backend::Mongo, "join_storm_mongo").await;
}

/// What one member saw, from its join on.
#[derive(Debug, Default)]
struct Seen {
    /// The members it knows of: its join reply's, plus those joined since, less those left.
    members: BTreeSet<String>,
    /// The room's count as it keeps it (see docs/protocol.md, Presence).
    count: i64,
    /// Its presence frames, in order: `memberJoined`, `memberLeft` or `membersChanged`.
    presence: Vec<String>,
    /// The `membersChanged` frames, whole.
    changed: Vec<Value>,
}

impl Seen {
    fn apply(&mut self, frame: &Value) {
        let data = &frame["data"];
        let user = |v: &Value| v.as_str().unwrap().to_owned();
        match frame["event"].as_str().unwrap() {
            "roomHistory" if frame["id"] == json!(1) => {
                assert_eq!(data["membersNext"], Value::Null, "a room of {N} fits one page: {frame}");
                self.members = data["members"].as_array().unwrap().iter().map(|m| user(&m["userId"])).collect();
                self.count = data["membersCount"].as_i64().unwrap();
                return;
            }
            "memberJoined" => {
                self.members.insert(user(&data["userId"]));
                self.count += 1;
            }
            "memberLeft" => {
                self.members.remove(data["userId"].as_str().unwrap());
                self.count -= 1;
            }
            "membersChanged" => {
                self.members.extend(data["joined"].as_array().unwrap().iter().map(|m| user(&m["userId"])));
                for gone in data["left"].as_array().unwrap() {
                    self.members.remove(gone.as_str().unwrap());
                }
                self.count = data["membersCount"].as_i64().unwrap();
                self.changed.push(frame.clone());
            }
            _ => return,
        }
        self.presence.push(frame["event"].as_str().unwrap().to_owned());
    }
}

/// Reads `c`'s frames into `seen` until `done` says so; panics past the client's wait.
async fn read_until(c: &mut Client, seen: &mut Seen, done: impl Fn(&Value, &Seen) -> bool) {
    loop {
        let frame = c.recv().await;
        assert_ne!(frame["event"], "error", "{frame}");
        seen.apply(&frame);
        if done(&frame, seen) {
            return;
        }
    }
}

async fn a_join_storm_is_coalesced_and_every_member_ends_with_the_whole_room(backend: Backend, name: &str) {
    let mut settings = backend.settings(name);
    settings.presence_burst = PresenceBurst { limit: LIMIT, interval: INTERVAL };
    let server = TestServer::start_with(settings).await;
    let rid = server.add_request("t1").await.to_hex();
    let users: Vec<String> = (0..N).map(|i| format!("lab-{i:02}")).collect();
    let mut clients = Vec::new();
    for u in &users {
        clients.push(Client::connect(&server.url(), &token(u, "LAB")).await.seeing_presence());
    }
    // The storm: every join sent before any reply is read.
    for c in &mut clients {
        c.send(json!({"event": "joinRoom", "data": {"requestId": rid}, "id": 1})).await;
    }
    let mut seen: Vec<Seen> = (0..N).map(|_| Seen::default()).collect();
    let everyone = |_: &Value, s: &Seen| s.count == i64::try_from(N).unwrap() && s.members.len() == N;
    futures_util::future::join_all(clients.iter_mut().zip(&mut seen).map(|(c, s)| read_until(c, s, everyone))).await;

    // Once the storm is over (two quiet intervals), a message marks the end of every member's
    // frames: anything presence still had to say was queued before it.
    tokio::time::sleep(INTERVAL * 2).await;
    clients[0].send(json!({"event": "message", "data": {"requestId": rid, "message": "end"}, "id": 2})).await;
    let marker = |f: &Value, _: &Seen| f["event"] == "message" && f["data"]["message"] == "end";
    futures_util::future::join_all(clients.iter_mut().zip(&mut seen).map(|(c, s)| read_until(c, s, marker))).await;

    let all: BTreeSet<String> = users.iter().cloned().collect();
    let schemas = Schemas::load();
    let mut total = 0;
    for (user, s) in users.iter().zip(&seen) {
        assert_eq!(s.members, all, "{user} knows every member");
        assert_eq!(s.count, i64::try_from(N).unwrap(), "{user}'s count of the room");
        assert_eq!(s.changed.last().map(|f| f["data"]["membersCount"].clone()), s.changed.last().map(|_| json!(N)));
        // memberJoined for the first ones, then only membersChanged.
        let first_changed = s.presence.iter().position(|e| e == "membersChanged").unwrap_or(s.presence.len());
        assert!(s.presence[..first_changed].iter().all(|e| e == "memberJoined"), "{user}: {:?}", s.presence);
        assert!(s.presence[first_changed..].iter().all(|e| e == "membersChanged"), "{user}: {:?}", s.presence);
        assert!(first_changed <= LIMIT as usize, "{user}: {:?}", s.presence);
        // At most the limit one by one, and one frame per interval of the storm after that.
        assert!(
            s.presence.len() <= LIMIT as usize + 4,
            "{user}: {} presence frames: {:?}",
            s.presence.len(),
            s.presence
        );
        for f in &s.changed {
            assert!(schemas.server_ok(f), "membersChanged {f} violates docs/asyncapi.yaml");
        }
        total += s.presence.len();
    }
    assert!(seen.iter().any(|s| !s.changed.is_empty()), "past {LIMIT} changes the storm is coalesced");
    assert!(total * 4 < N * (N - 1) / 2, "{total} presence frames for {N} joiners");
    server.stop().await;
}
