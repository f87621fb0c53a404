//! `docs/asyncapi.yaml` against a real session of presence and typing: every frame the clients
//! send (`typing`, with and without an id) and every frame the server sends them (`typing`,
//! `memberJoined`, `memberLeft`, `roomHistory` with `members`, the `ack` of `typing`) is
//! validated against the JSON Schema of its event in the document, as `asyncapi.rs` does for
//! the rest of the protocol; mutated frames must fail, so the check can fail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};

use jsonschema::{Draft, Registry, Validator};
use labchat_tests::client::Client;
use labchat_tests::harness::{TestServer, token};
use serde_json::{Value, json};

const BASE: &str = "urn:labchat:asyncapi";

/// The document's validators: client events (the server receives them) and server events, by
/// event name, and named component schemas.
struct Contract {
    registry: Registry<'static>,
    client: BTreeMap<String, Validator>,
    server: BTreeMap<String, Validator>,
}

fn deref(doc: &Value, mut pointer: String) -> String {
    for _ in 0..16 {
        let node = doc.pointer(&pointer).unwrap_or_else(|| panic!("dangling reference #{pointer}"));
        match node.get("$ref").and_then(Value::as_str) {
            Some(r) => pointer = r.strip_prefix('#').unwrap().to_owned(),
            None => return pointer,
        }
    }
    panic!("reference loop at #{pointer}")
}

impl Contract {
    fn load() -> Self {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/asyncapi.yaml");
        let doc: Value = serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let registry = Registry::new()
            .draft(Draft::Draft7)
            .add(BASE, Draft::Draft7.create_resource(doc.clone()))
            .unwrap()
            .prepare()
            .unwrap();
        let mut contract = Self { registry, client: BTreeMap::new(), server: BTreeMap::new() };
        for (name, op) in doc["operations"].as_object().unwrap() {
            for m in op["messages"].as_array().unwrap() {
                let msg = deref(&doc, m["$ref"].as_str().unwrap().strip_prefix('#').unwrap().to_owned());
                let payload = deref(&doc, format!("{msg}/payload"));
                let event = doc.pointer(&format!("{payload}/properties/event/const")).and_then(Value::as_str);
                let event = event.unwrap_or_else(|| panic!("{name}: no event const")).to_owned();
                let v = contract.validator(&payload);
                match op["action"].as_str() {
                    Some("receive") => contract.client.insert(event, v),
                    Some("send") => contract.server.insert(event, v),
                    other => panic!("{name}: action {other:?}"),
                };
            }
        }
        contract
    }

    fn validator(&self, pointer: &str) -> Validator {
        jsonschema::options()
            .with_draft(Draft::Draft7)
            .with_registry(&self.registry)
            .build(&json!({ "$ref": format!("{BASE}#{pointer}") }))
            .unwrap_or_else(|e| panic!("schema #{pointer} does not compile: {e}"))
    }

    fn check(map: &BTreeMap<String, Validator>, side: &str, frame: &Value) -> bool {
        let event = frame["event"].as_str().unwrap();
        let v = map.get(event).unwrap_or_else(|| panic!("{side} event {event} is not documented"));
        v.is_valid(frame)
    }

    fn client_ok(&self, frame: &Value) -> bool {
        Self::check(&self.client, "client", frame)
    }

    fn server_ok(&self, frame: &Value) -> bool {
        Self::check(&self.server, "server", frame)
    }
}

/// A client whose every frame, both ways, is checked against the document.
struct Peer<'a> {
    contract: &'a Contract,
    client: Client,
    seen: &'a std::cell::RefCell<BTreeSet<String>>,
}

impl Peer<'_> {
    async fn send(&mut self, frame: Value) {
        assert!(self.contract.client_ok(&frame), "client frame {frame} violates the document");
        self.client.send(frame).await;
    }

    async fn recv(&mut self) -> Value {
        let frame = self.client.recv().await;
        assert!(self.contract.server_ok(&frame), "server frame {frame} violates the document");
        let data = &frame["data"];
        let what = match frame["event"].as_str().unwrap() {
            "roomHistory" if data["members"].as_array().is_some_and(|m| !m.is_empty()) => "roomHistory with members",
            "ack" if data.as_object().is_some_and(|d| d.len() == 1) => "ack {requestId}",
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
    let contract = Contract::load();
    let server = TestServer::start().await;
    let rid = server.add_request("t1").await.to_hex();
    let seen = std::cell::RefCell::new(BTreeSet::new());
    let connect = |user: &'static str, role: &'static str| {
        let url = server.url();
        async move { Client::connect(&url, &token(user, role)).await.seeing_presence() }
    };
    let mut t = Peer { contract: &contract, client: connect("t1", "TEACHER").await, seen: &seen };
    let mut l = Peer { contract: &contract, client: connect("lab-1", "LAB").await, seen: &seen };

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

    l.send(json!({"event": "leaveRoom", "data": {"requestId": rid}, "id": 8})).await;
    l.expect("ack").await;
    assert_eq!(t.expect("memberLeft").await, json!({"requestId": rid, "userId": "lab-1"}));

    let seen = seen.into_inner();
    let want: BTreeSet<String> =
        ["roomHistory with members", "ack {requestId}", "memberJoined", "typing", "memberLeft"]
            .map(String::from)
            .into();
    assert_eq!(seen, want);
    server.stop().await;
}

#[test]
fn mutated_presence_and_typing_frames_are_refused() {
    let c = Contract::load();
    let rid = "6751b6df1ad14eaa13a03313";
    let typing = json!({"event": "typing", "data": {"requestId": rid, "userId": "t1", "role": "TEACHER"}});
    let joined = json!({"event": "memberJoined", "data": {"requestId": rid, "userId": "t1", "role": "LAB"}});
    let left = json!({"event": "memberLeft", "data": {"requestId": rid, "userId": "t1"}});
    for frame in [&typing, &joined, &left] {
        assert!(c.server_ok(frame), "{frame}");
        for (pointer, value) in [("/data/extra", Some(json!(1))), ("/data/requestId", None), ("/data/userId", None)] {
            let mut f = frame.clone();
            let (parent, key) = pointer.rsplit_once('/').unwrap();
            let obj = f.pointer_mut(parent).unwrap().as_object_mut().unwrap();
            match value {
                Some(v) => obj.insert(key.to_owned(), v),
                None => obj.remove(key),
            };
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
