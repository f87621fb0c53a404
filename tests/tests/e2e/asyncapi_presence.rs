//! `docs/asyncapi.yaml` against a real session of presence and typing: every frame the clients
//! send (`typing`, with and without an id) and every frame the server sends them (`typing`,
//! `memberJoined`, `memberLeft`, `roomHistory` with `members`, the `ack` of `typing`) is
//! validated against the JSON Schema of its event in the document, as `asyncapi.rs` does for
//! the rest of the protocol; mutated frames must fail, so the check can fail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use labchat_tests::asyncapi::{Schemas, mutated};
use labchat_tests::client::Client;
use labchat_tests::harness::{TestServer, token};
use serde_json::{Value, json};

/// A client whose every frame, both ways, is checked against the document.
struct Peer<'a> {
    schemas: &'a Schemas,
    client: Client,
    seen: &'a std::cell::RefCell<BTreeSet<String>>,
}

impl Peer<'_> {
    async fn send(&mut self, frame: Value) {
        assert!(self.schemas.client_ok(&frame), "client frame {frame} violates the document");
        self.client.send(frame).await;
    }

    async fn recv(&mut self) -> Value {
        let frame = self.client.recv().await;
        assert!(self.schemas.server_ok(&frame), "server frame {frame} violates the document");
        let data = &frame["data"];
        let what = match frame["event"].as_str().unwrap() {
            "roomHistory" if data["members"].as_array().is_some_and(|m| !m.is_empty()) => "roomHistory with members",
            "ack" if data.as_object().is_some_and(|d| d.len() == 1) => "ack {requestId}",
            "ack" if data.get("membersCount").is_some() => "ack of members",
            other => other,
        };
        self.seen.borrow_mut().insert(what.to_owned());
        frame
    }

    async fn expect(&mut self, event: &str) -> Value {
        let frame = self.recv().await;
        assert_eq!(frame["event"], event, "{frame}");
        frame["data"].clone()
    }
}

#[tokio::test]
async fn presence_and_typing_frames_of_a_real_session_match_the_document() {
    let schemas = Schemas::load();
    let server = TestServer::start().await;
    let rid = server.add_request("t1").await.to_hex();
    let seen = std::cell::RefCell::new(BTreeSet::new());
    let connect = |user: &'static str, role: &'static str| {
        let url = server.url();
        async move { Client::connect(&url, &token(user, role)).await.seeing_presence() }
    };
    let mut t = Peer { schemas: &schemas, client: connect("t1", "TEACHER").await, seen: &seen };
    let mut l = Peer { schemas: &schemas, client: connect("lab-1", "LAB").await, seen: &seen };

    t.send(json!({"event": "joinRoom", "data": {"requestId": rid}, "id": 1})).await;
    assert_eq!(t.expect("roomHistory").await["members"], json!([{"userId": "t1", "role": "TEACHER"}]));
    t.expect("ack").await;
    l.send(json!({"event": "joinRoom", "data": {"requestId": rid}, "id": "j"})).await;
    assert_eq!(l.expect("roomHistory").await["members"].as_array().unwrap().len(), 2);
    l.expect("ack").await;
    assert_eq!(t.expect("memberJoined").await["userId"], "lab-1");

    // typing, both directions: with an id (acked), and without.
    l.send(json!({"event": "typing", "data": {"requestId": rid}, "id": 7})).await;
    assert_eq!(l.expect("ack").await, json!({"requestId": rid}));
    assert_eq!(t.expect("typing").await, json!({"requestId": rid, "userId": "lab-1", "role": "LAB"}));
    t.send(json!({"event": "typing", "data": {"resquestId": rid}})).await;
    assert_eq!(l.expect("typing").await["userId"], "t1");

    // members: a page, with an id and without (the reply is the only frame with the result).
    t.send(json!({"event": "members", "data": {"requestId": rid}, "id": 9})).await;
    let page = t.expect("ack").await;
    assert_eq!((page["membersCount"].clone(), page["next"].clone()), (json!(2), Value::Null), "{page}");
    t.send(json!({"event": "members", "data": {"requestId": rid, "after": "lab-1"}})).await;
    assert_eq!(t.expect("ack").await["members"], json!([{"userId": "t1", "role": "TEACHER"}]));

    l.send(json!({"event": "leaveRoom", "data": {"requestId": rid}, "id": 8})).await;
    l.expect("ack").await;
    assert_eq!(t.expect("memberLeft").await, json!({"requestId": rid, "userId": "lab-1"}));

    let seen = seen.into_inner();
    let want: BTreeSet<String> =
        ["roomHistory with members", "ack {requestId}", "ack of members", "memberJoined", "typing", "memberLeft"]
            .map(String::from)
            .into();
    assert_eq!(seen, want);
    server.stop().await;
}

#[test]
fn mutated_presence_and_typing_frames_are_refused() {
    let c = Schemas::load();
    let rid = "6751b6df1ad14eaa13a03313";
    let typing = json!({"event": "typing", "data": {"requestId": rid, "userId": "t1", "role": "TEACHER"}});
    let joined = json!({"event": "memberJoined", "data": {"requestId": rid, "userId": "t1", "role": "LAB"}});
    let left = json!({"event": "memberLeft", "data": {"requestId": rid, "userId": "t1"}});
    let changed = json!({"event": "membersChanged", "data": {"requestId": rid, "joined": [{"userId": "t1", "role": "LAB"}], "left": ["t2"], "membersCount": 3}});
    assert!(c.server_ok(&changed), "{changed}");
    for (pointer, value) in
        [("/data/extra", Some(json!(1))), ("/data/membersCount", None), ("/data/joined", Some(json!(["t1"])))]
    {
        let f = mutated(&changed, pointer, value);
        assert!(!c.server_ok(&f), "accepted {f}");
    }
    assert!(c.client_ok(&json!({"event": "members", "data": {"requestId": rid, "after": "t1"}, "id": 2})));
    assert!(!c.client_ok(&json!({"event": "members", "data": {}})));
    for frame in [&typing, &joined, &left] {
        assert!(c.server_ok(frame), "{frame}");
        for (pointer, value) in [("/data/extra", Some(json!(1))), ("/data/requestId", None), ("/data/userId", None)] {
            let f = mutated(frame, pointer, value);
            assert!(!c.server_ok(&f), "accepted {f}");
        }
    }
    let mut no_role = joined.clone();
    no_role["data"].as_object_mut().unwrap().remove("role");
    assert!(!c.server_ok(&no_role), "memberJoined needs a role");
    let mut bad_role = typing.clone();
    bad_role["data"]["role"] = json!("ADMIN");
    assert!(!c.server_ok(&bad_role));
    let history = |members: Value| json!({"event": "roomHistory", "data": {"requestId": rid, "messages": [], "hasMore": false, "members": members}});
    assert!(c.server_ok(&history(json!([{"userId": "t1", "role": "TEACHER"}]))));
    assert!(!c.server_ok(&history(json!([{"userId": "t1"}]))));
    assert!(!c.server_ok(&history(json!([{"userId": "t1", "role": "LAB", "x": 1}]))));
    assert!(c.client_ok(&json!({"event": "typing", "data": {"requestId": rid}, "id": "k"})));
    assert!(!c.client_ok(&json!({"event": "typing", "data": {}})));
    assert!(!c.client_ok(&json!({"event": "typing", "data": {"requestId": "nope"}})));
}
