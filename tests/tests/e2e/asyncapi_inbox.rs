//! The inbox's part of `docs/asyncapi.yaml`, checked as `asyncapi.rs` checks the rest: every
//! frame of a real session that uses `inbox`, `subscribeInbox` and `unsubscribeInbox` (sent and
//! received: their acks, `inboxUpdate`, the `roomHistory` of a join with `unread` and
//! `firstUnreadId`) is validated against the schema of its event in the document, and mutated
//! frames must fail, so the check can fail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use labchat_domain::{Request, UserId};
use labchat_tests::asyncapi::Schemas;
use labchat_tests::client::Client;
use labchat_tests::harness::{TestServer, new_request_id, settings, token};
use serde_json::{Value, json};

/// A client whose every frame in and out is checked against the document.
struct Checked<'a> {
    client: Client,
    schemas: &'a Schemas,
    seen: BTreeSet<String>,
    next_id: u64,
}

impl<'a> Checked<'a> {
    async fn connect(schemas: &'a Schemas, url: &str, user: &str, role: &str) -> Self {
        Self { client: Client::connect(url, &token(user, role)).await, schemas, seen: BTreeSet::new(), next_id: 0 }
    }

    async fn send(&mut self, frame: Value, valid: bool) {
        assert_eq!(self.schemas.client_ok(&frame), valid, "the document's verdict on {frame}");
        self.client.send(frame).await;
    }

    async fn recv(&mut self) -> Value {
        let frame = self.client.recv().await;
        let errs = self.schemas.server_errors(&frame);
        assert!(errs.is_empty(), "server frame {frame} violates the document: {errs:#?}");
        self.seen.insert(frame["event"].as_str().unwrap().to_owned());
        frame
    }

    /// Sends `{event, data, id}`; returns every frame up to the final `ack` or `error`.
    async fn call(&mut self, event: &str, data: Value, valid: bool) -> Vec<Value> {
        self.next_id += 1;
        let id = json!(self.next_id);
        self.send(json!({"event": event, "data": data, "id": id}), valid).await;
        let mut frames = Vec::new();
        loop {
            let f = self.recv().await;
            let done = f["id"] == id && (f["event"] == "ack" || f["event"] == "error");
            frames.push(f);
            if done {
                return frames;
            }
        }
    }

    /// A successful call; the ack's data must be the `variant` schema.
    async fn ok(&mut self, event: &str, data: Value, variant: &str) -> Value {
        let frames = self.call(event, data, true).await;
        let last = frames.last().unwrap().clone();
        assert_eq!(last["event"], "ack", "{event} failed: {last}");
        assert!(self.schemas.named(variant).is_valid(&last["data"]), "the ack of {event} is not a {variant}: {last}");
        self.seen.insert(format!("ack of {event}"));
        last["data"].clone()
    }
}

#[tokio::test]
async fn every_inbox_frame_of_a_real_session_matches_the_document() {
    let schemas = Schemas::load();
    let (r1, r2) = (new_request_id(), new_request_id());
    let mut s = settings();
    s.store = labchat::app::StoreSettings::Memory {
        seed: [r1, r2].iter().map(|id| Request::new(*id, UserId::parse("t1").unwrap())).collect(),
    };
    let server = TestServer::start_with(s).await;
    let url = server.url();
    let mut t = Checked::connect(&schemas, &url, "t1", "TEACHER").await;
    let mut l = Checked::connect(&schemas, &url, "lab-1", "LAB").await;

    assert_eq!(t.ok("subscribeInbox", json!({}), "AckEmpty").await, json!({}));
    let empty = t.ok("inbox", json!({}), "AckInbox").await;
    assert_eq!(empty, json!({"rooms": [], "next": null}));

    // Posts in two rooms: each reaches the teacher's inbox live.
    let mut first = Value::Null;
    for (i, room) in [r1, r2, r2].iter().enumerate() {
        let data =
            l.ok("message", json!({"requestId": room.to_hex(), "message": format!("m{i}")}), "ChatMessage").await;
        if i == 0 {
            first = data;
        }
        let update = t.recv().await;
        assert_eq!(update["event"], "inboxUpdate");
        assert_eq!(update["data"]["requestId"], room.to_hex());
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let page = t.ok("inbox", json!({"limit": 1}), "AckInbox").await;
    assert!(page["next"].is_string(), "{page}");
    let rest = t.ok("inbox", json!({"limit": 1, "before": page["next"]}), "AckInbox").await;
    assert_eq!(rest["rooms"][0]["requestId"], r1.to_hex());

    // Without an id: the ack comes without one, and the document allows that for `inbox` only.
    t.send(json!({"event": "inbox", "data": {"limit": 100}}), true).await;
    let reply = t.recv().await;
    assert!(reply["event"] == "ack" && reply.get("id").is_none(), "{reply}");

    // Malformed inbox frames: refused by the document as by the server.
    for data in [json!({"limit": 0}), json!({"limit": 101}), json!({"limit": "5"}), json!({"before": 5})] {
        let frames = t.call("inbox", data.clone(), false).await;
        assert_eq!(frames.last().unwrap()["data"]["code"], "BAD_REQUEST", "{data}");
    }
    // A string the document allows but the server did not issue: refused by the server.
    let frames = t.call("inbox", json!({"before": "not-a-cursor"}), true).await;
    assert_eq!(frames.last().unwrap()["data"]["code"], "BAD_REQUEST");

    // A join's roomHistory: unread and the first unread id, or null.
    let frames = t.call("joinRoom", json!({"requestId": r1.to_hex()}), true).await;
    assert_eq!(frames[0]["event"], "roomHistory");
    assert_eq!(
        (frames[0]["data"]["unread"].clone(), frames[0]["data"]["firstUnreadId"].clone()),
        (json!(1), first["id"].clone())
    );
    t.ok("readMessages", json!({"requestId": r1.to_hex(), "messages": [first["id"]]}), "AckMarked").await;
    let mut updated = false;
    for _ in 0..4 {
        let f = t.recv().await;
        if f["event"] == "inboxUpdate" {
            assert_eq!(f["data"]["unread"], 0);
            updated = true;
            break;
        }
    }
    assert!(updated, "a read announces the new count");
    let frames = t.call("joinRoom", json!({"requestId": r1.to_hex()}), true).await;
    assert_eq!(frames[0]["data"]["firstUnreadId"], Value::Null);
    assert_eq!(t.ok("unsubscribeInbox", json!({}), "AckEmpty").await, json!({}));

    let want: BTreeSet<String> = ["ack", "error", "inboxUpdate", "roomHistory", "messagesDelivered", "messageReads"]
        .iter()
        .chain(&["ack of subscribeInbox", "ack of inbox", "ack of unsubscribeInbox", "ack of readMessages"])
        .map(|s| (*s).to_owned())
        .collect();
    assert!(want.is_subset(&t.seen), "seen {:?}", t.seen);
    server.stop().await;
}

#[test]
fn mutated_inbox_frames_are_refused() {
    let schemas = Schemas::load();
    let message = json!({
        "id": "6751b6e01ad14eaa13a03314", "requestId": "6751b6df1ad14eaa13a03313", "seq": 1,
        "senderId": "lab-7", "senderRole": "LAB", "message": "hi", "createdAt": "2024-12-05T14:03:11.120Z",
        "deliveredTo": [], "readBy": []
    });
    let row = json!({"requestId": "6751b6df1ad14eaa13a03313", "lastMessage": message, "unread": 2,
        "lastActivityAt": "2024-12-05T14:03:11.120Z"});
    let update = json!({"event": "inboxUpdate", "data": row});
    assert!(schemas.server_errors(&update).is_empty());
    let mutate = |pointer: &str, value: Value| {
        let mut f = update.clone();
        *f.pointer_mut(pointer).unwrap() = value;
        f
    };
    for (pointer, value) in [
        ("/data/unread", json!(-1)),
        ("/data/unread", json!("2")),
        ("/data/requestId", json!("nope")),
        ("/data/lastActivityAt", json!("yesterday")),
        ("/data/lastMessage/seq", json!(0)),
    ] {
        assert!(!schemas.server_errors(&mutate(pointer, value.clone())).is_empty(), "{pointer} = {value}");
    }
    let ack = |data: Value, id: Option<Value>| {
        let mut f = json!({"event": "ack", "data": data});
        if let Some(id) = id {
            f["id"] = id;
        }
        schemas.server_errors(&f).is_empty()
    };
    assert!(ack(json!({"rooms": [row], "next": null}), None), "an inbox ack may come without id");
    assert!(ack(json!({"rooms": [], "next": "i1.x"}), Some(json!(1))));
    assert!(ack(json!({}), Some(json!(1))), "the ack of subscribeInbox");
    assert!(!ack(json!({}), None), "only the inbox ack may come without id");
    assert!(!ack(json!({"rooms": [], "next": null, "more": 1}), Some(json!(1))));
    assert!(!ack(json!({"rooms": []}), Some(json!(1))));
    let history = |extra: Value| {
        let mut data = json!({"requestId": "6751b6df1ad14eaa13a03313", "messages": [], "hasMore": false});
        data.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        schemas.server_errors(&json!({"event": "roomHistory", "data": data, "id": 1})).is_empty()
    };
    assert!(history(json!({"unread": 0, "firstUnreadId": null})));
    assert!(history(json!({"unread": 3, "firstUnreadId": "6751b6e01ad14eaa13a03314"})));
    assert!(!history(json!({"unread": -1})));
    assert!(!history(json!({"firstUnreadId": 5})));
    assert!(schemas.client_ok(&json!({"event": "subscribeInbox", "data": {}})));
    assert!(!schemas.client_ok(&json!({"event": "subscribeInbox"})), "data is required");
}
