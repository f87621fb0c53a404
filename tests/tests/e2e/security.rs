//! Security, end to end over real websockets with real JWTs: a TEACHER can never read, post to,
//! mark or leave another teacher's request, whatever combination of `requestId`/`resquestId`,
//! cursor ids, receipt ids and extra fields it sends; identity comes from the token only; a
//! missing request is answered exactly like a forbidden one; and a mid-session `refreshToken` can
//! never switch the connection to another user. (Handshake refusals are in `handshake.rs`.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey};
use labchat::app::Settings;
use labchat_core::ChatStore;
use labchat_domain::{Cursor, HistoryLimit, HistoryPage, HistoryQuery, Request, RequestId, UserId};
use labchat_tests::client::Client;
use labchat_tests::harness::{
    SECRET, TestServer, fixture, new_request_id, now_secs, settings, sign, sign_with, token, unsigned,
};
use labchat_transport_ws::protocol::ClientEvent;
use serde_json::{Map, Value, json};

/// How long "nothing more arrives" is watched for.
const QUIET: Duration = Duration::from_millis(300);

/// The creator of R1, and the other teacher (creator of R2).
const ALICE: &str = "teacher-alice";
const BOB: &str = "teacher-bob";
const CAROL: &str = "lab-carol";

/// Every client event that names a room, from the protocol's own list (a new one is attacked too).
fn room_events() -> Vec<&'static str> {
    ClientEvent::ALL.into_iter().filter(|e| e.names_room()).map(ClientEvent::as_str).collect()
}

/// Test settings with a rate limit no attack sequence here comes near.
fn fast_settings() -> Settings {
    let mut s = settings();
    s.ws.rate_per_second = 100_000.0;
    s.ws.rate_burst = 100_000.0;
    s
}

/// Adds a request created by `creator` straight to the in-memory store; returns its hex id.
fn add_request(server: &TestServer, creator: &str) -> String {
    let id = new_request_id();
    server.memory.as_ref().expect("in-memory store").add_request(Request::new(id, UserId::parse(creator).unwrap()));
    id.to_hex()
}

/// The whole of a room's stored history, straight from the store (not through the transport).
async fn stored(server: &TestServer, rid: &str) -> HistoryPage {
    let limit = HistoryLimit::new(HistoryLimit::MAX).unwrap();
    let page = server
        .memory
        .as_ref()
        .unwrap()
        .history(RequestId::parse(rid).unwrap(), HistoryQuery { cursor: Cursor::Latest, limit })
        .await
        .unwrap()
        .unwrap();
    assert!(!page.has_more);
    page
}

/// Reads and returns every frame that arrives until the connection has been quiet for [`QUIET`]
/// (at most 100 frames).
async fn drain(c: &mut Client) -> Vec<Value> {
    let mut out = Vec::new();
    while let Some(f) = c.try_recv(QUIET).await {
        out.push(f);
        assert!(out.len() < 100, "a flood of frames: {out:?}");
    }
    out
}

fn hex_ids(v: &Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_owned()).collect()
}

/// A client whose every received frame is kept, to be scanned for leaks at the end.
struct Spy {
    c: Client,
    seen: Vec<Value>,
    n: u64,
}

impl Spy {
    async fn connect(server: &TestServer, sub: &str, role: &str) -> Self {
        Self { c: Client::connect(&server.url(), &token(sub, role)).await, seen: Vec::new(), n: 0 }
    }

    /// Sends `frame` (an object, without `id`) with a fresh string correlation id; returns every
    /// frame up to and including the `ack`/`error` carrying it.
    async fn call(&mut self, mut frame: Value) -> Vec<Value> {
        self.n += 1;
        let id = format!("spy-{}", self.n);
        frame["id"] = json!(id);
        self.c.send(frame).await;
        self.collect(&id).await
    }

    /// Sends raw text that carries the correlation id `id`; as [`Spy::call`].
    async fn call_text(&mut self, text: &str, id: &str) -> Vec<Value> {
        self.c.send_text(text).await;
        self.collect(id).await
    }

    async fn collect(&mut self, id: &str) -> Vec<Value> {
        let mut frames = Vec::new();
        for _ in 0..100 {
            let f = self.c.recv().await;
            self.seen.push(f.clone());
            let done = f["id"] == json!(id) && (f["event"] == "ack" || f["event"] == "error");
            frames.push(f);
            if done {
                return frames;
            }
        }
        panic!("no reply to {id} within 100 frames: {frames:?}");
    }

    /// `{event, data}` must fail with `code`, answered by exactly one frame (nothing else
    /// arrives in between). Returns the error data.
    async fn refused(&mut self, event: &str, data: Value, code: &str) -> Value {
        let frames = self.call(json!({"event": event, "data": data})).await;
        let last = frames.last().unwrap();
        assert_eq!(last["event"], "error", "{event} {data} should have failed: {frames:?}");
        assert_eq!(last["data"]["code"], code, "{event} {data}: {last}");
        assert_eq!(last["data"]["event"], event, "{last}");
        assert_eq!(last["data"]["retryable"], false, "{last}");
        assert_eq!(frames.len(), 1, "{event} {data}: only the error may arrive: {frames:?}");
        last["data"].clone()
    }

    async fn drain(&mut self) {
        let frames = drain(&mut self.c).await;
        self.seen.extend(frames);
    }
}

/// Two teachers and a lab user. Alice (R1) and Carol (LAB) have chatted in R1 with receipts;
/// Bob (R2) has joined R2, where Carol has left him one message (Carol has not joined R2).
struct World {
    server: TestServer,
    r1: String,
    r2: String,
    alice: Client,
    carol: Client,
    bob: Spy,
    /// R1's messages as Carol's `history` showed them.
    r1_history: Value,
    /// R1's message ids.
    r1_ids: Vec<String>,
    /// Strings that only R1's content holds: texts, ids and client message ids.
    r1_secrets: Vec<String>,
    /// Carol's message in R2.
    r2_from_carol: String,
}

async fn world() -> World {
    let server = TestServer::start_with(fast_settings()).await;
    let r1 = add_request(&server, ALICE);
    let r2 = add_request(&server, BOB);
    let mut alice = Client::connect(&server.url(), &token(ALICE, "TEACHER")).await;
    let mut carol = Client::connect(&server.url(), &token(CAROL, "LAB")).await;
    alice.join(&r1).await;
    carol.join(&r1).await;
    let mut ids = Vec::new();
    for k in 0..3 {
        let text = format!("r1-secret-alice-{k}");
        let data = json!({"requestId": r1, "message": text, "clientMessageId": format!("r1-cmid-{k}")});
        let m = alice.ok("message", data).await;
        assert_eq!(carol.expect("message").await, m);
        ids.push(m["id"].as_str().unwrap().to_owned());
    }
    let m = carol
        .ok("message", json!({"requestId": r1, "message": "r1-secret-carol", "clientMessageId": "r1-cmid-c"}))
        .await;
    assert_eq!(alice.expect("message").await, m);
    ids.push(m["id"].as_str().unwrap().to_owned());
    // Receipts both ways.
    carol.ok("ackMessages", json!({"requestId": r1, "messages": [ids[0], ids[1], ids[2]]})).await;
    carol.ok("readMessages", json!({"requestId": r1, "messages": [ids[0]]})).await;
    alice.ok("readMessages", json!({"requestId": r1, "messages": [ids[3]]})).await;
    drain(&mut alice).await;
    drain(&mut carol).await;

    let frames = carol.call("history", json!({"requestId": r1})).await;
    let r1_history = frames[0]["data"].clone();
    let msgs = r1_history["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 4);
    assert_eq!(msgs[0]["readBy"][0]["userId"], CAROL, "the setup made receipts");
    assert_eq!(msgs[3]["readBy"][0]["userId"], ALICE);
    let mut r1_secrets = ids.clone();
    for m in msgs {
        r1_secrets.push(m["message"].as_str().unwrap().to_owned());
        r1_secrets.push(m["clientMessageId"].as_str().unwrap().to_owned());
    }

    let r2_from_carol = carol.post(&r2, "r2-hello-bob").await["id"].as_str().unwrap().to_owned();
    let mut bob = Spy::connect(&server, BOB, "TEACHER").await;
    let joined = bob.call(json!({"event": "joinRoom", "data": {"requestId": r2}})).await;
    assert_eq!(joined[0]["data"]["messages"][0]["id"], r2_from_carol.as_str());
    drain(&mut carol).await;
    World { server, r1, r2, alice, carol, bob, r1_history, r1_ids: ids, r1_secrets, r2_from_carol }
}

impl World {
    /// Everything Bob received: never any of R1's content, and no success about R1.
    fn assert_bob_saw_nothing_of_r1(&self) {
        assert!(!self.bob.seen.is_empty());
        for f in &self.bob.seen {
            let text = f.to_string();
            for secret in &self.r1_secrets {
                assert!(!text.contains(secret.as_str()), "Bob received R1 content {secret:?} in {f}");
            }
            if f["event"] != "error" {
                assert_ne!(f["data"]["requestId"], self.r1.as_str(), "Bob got a non-error frame about R1: {f}");
            }
        }
    }

    /// R1 is as the setup left it: same history through the transport and in the store, and
    /// Alice and Carol received nothing.
    async fn assert_r1_untouched(&mut self, store_before: &HistoryPage) {
        assert_eq!(drain(&mut self.alice).await, Vec::<Value>::new(), "Alice received something caused by Bob");
        assert_eq!(drain(&mut self.carol).await, Vec::<Value>::new(), "Carol received something caused by Bob");
        let frames = self.carol.call("history", json!({"requestId": self.r1})).await;
        assert_eq!(frames[0]["data"], self.r1_history, "R1's history changed");
        assert_eq!(&stored(&self.server, &self.r1).await, store_before, "R1's stored messages changed");
    }

    /// Alice and Carol are still subscribed to R1 and Bob is not.
    async fn assert_r1_still_live_and_bob_not_in_it(&mut self) {
        let m = self.alice.post(&self.r1, "r1-secret-after").await;
        assert_eq!(self.carol.expect("message").await, m);
        self.r1_secrets.push("r1-secret-after".into());
        self.r1_secrets.push(m["id"].as_str().unwrap().to_owned());
        self.bob.drain().await;
        self.assert_bob_saw_nothing_of_r1();
    }
}

/// The ways of naming R1 that decode to R1 (so the answer must be `FORBIDDEN`).
fn r1_forms(r1: &str) -> Vec<Map<String, Value>> {
    let upper = r1.to_uppercase();
    [
        json!({"requestId": r1}),
        json!({"resquestId": r1}),
        json!({"requestId": r1, "resquestId": r1}),
        json!({"requestId": upper}),
        json!({"resquestId": upper, "requestId": upper}),
    ]
    .into_iter()
    .map(|v| v.as_object().unwrap().clone())
    .collect()
}

/// Malformed or ambiguous ways of naming R1 (the answer must be `BAD_REQUEST`).
fn malformed_forms(r1: &str, r2: &str) -> Vec<Map<String, Value>> {
    [
        json!({"requestId": r1, "resquestId": r2}),
        json!({"requestId": r2, "resquestId": r1}),
        json!({"requestId": r1, "resquestId": r1.to_uppercase()}),
        json!({"requestId": null, "resquestId": r1}),
        json!({"requestId": r1, "resquestId": null}),
        json!({"requestId": [r1]}),
        json!({"requestId": {"$oid": r1}}),
        json!({"resquestId": format!(" {r1}")}),
        json!({"requestId": format!("{r1}0")}),
        json!({"requestId": format!("ObjectId(\"{r1}\")")}),
    ]
    .into_iter()
    .map(|v| v.as_object().unwrap().clone())
    .collect()
}

/// The rest of each room event's data, in several variants (R1's ids as cursors and receipts).
fn payloads(event: &str, r1_ids: &[String]) -> Vec<Value> {
    let (first, last) = (&r1_ids[0], &r1_ids[r1_ids.len() - 1]);
    match event {
        "joinRoom" => vec![json!({}), json!({"after": first}), json!({"after": last})],
        "history" => vec![json!({}), json!({"before": last}), json!({"before": r1_ids[1], "limit": 1})],
        "message" => vec![
            json!({"message": "bob-intrusion"}),
            // The client message id of Alice's first message: an idempotent retry must not
            // hand back her message.
            json!({"message": "bob-intrusion", "clientMessageId": "r1-cmid-0"}),
        ],
        "ackMessages" | "readMessages" => vec![json!({"messages": r1_ids}), json!({"messages": [first]})],
        // Alice's own messages: editing or deleting them must be refused as access, never reach them.
        "editMessage" => {
            vec![json!({"messageId": first, "message": "bob-edit"}), json!({"messageId": last, "message": "x"})]
        }
        "deleteMessage" => vec![json!({"messageId": first}), json!({"messageId": last})],
        _ => vec![json!({})],
    }
}

/// Identity claims a client might smuggle into `data`.
fn data_extras() -> Value {
    json!({
        "senderId": ALICE, "senderRole": "LAB", "userId": ALICE, "createdBy": BOB,
        "sub": ALICE, "role": "LAB", "token": token(ALICE, "TEACHER"),
    })
}

/// Identity claims a client might smuggle at the top level of the frame.
fn top_extras(r2: &str) -> Value {
    json!({
        "senderId": ALICE, "senderRole": "LAB", "userId": ALICE, "createdBy": BOB,
        "requestId": r2, "resquestId": r2, "role": "LAB", "token": token(ALICE, "TEACHER"),
    })
}

fn merged(base: &Map<String, Value>, more: &Value) -> Value {
    let mut out = base.clone();
    for (k, v) in more.as_object().unwrap() {
        out.insert(k.clone(), v.clone());
    }
    Value::Object(out)
}

#[tokio::test]
async fn another_teacher_can_never_join_read_post_mark_or_leave_a_room_it_did_not_create() {
    let mut w = world().await;
    let before = stored(&w.server, &w.r1).await;
    let (r1, r2) = (w.r1.clone(), w.r2.clone());
    let mut attempts = 0;
    for event in room_events() {
        for payload in payloads(event, &w.r1_ids) {
            for (forms, code) in [(r1_forms(&r1), "FORBIDDEN"), (malformed_forms(&r1, &r2), "BAD_REQUEST")] {
                for form in forms {
                    let plain = merged(&form, &payload);
                    let e = w.bob.refused(event, plain.clone(), code).await;
                    if code == "FORBIDDEN" {
                        assert_eq!(e["requestId"], r1.as_str(), "{e}");
                        assert_eq!(e["message"], "you may not access this request", "{e}");
                    }
                    // Identity claims in data, and at the top level (where a requestId naming
                    // Bob's own room must not redirect the frame either).
                    let with_data = merged(plain.as_object().unwrap(), &data_extras());
                    w.bob.refused(event, with_data.clone(), code).await;
                    let mut frame = top_extras(&r2);
                    frame["event"] = json!(event);
                    frame["data"] = with_data;
                    let frames = w.bob.call(frame).await;
                    assert_eq!(frames.len(), 1, "{frames:?}");
                    assert_eq!(
                        (frames[0]["event"].as_str(), frames[0]["data"]["code"].as_str()),
                        (Some("error"), Some(code))
                    );
                    attempts += 3;
                }
            }
        }
    }
    // Duplicate keys: whichever one the server reads, it must not act on R1.
    for (n, data) in [
        format!(r#"{{"requestId":"{r2}","requestId":"{r1}"}}"#),
        format!(r#"{{"resquestId":"{r2}","resquestId":"{r1}"}}"#),
        format!(r#"{{"requestId":"{r2}","resquestId":"{r2}","resquestId":"{r1}"}}"#),
    ]
    .iter()
    .enumerate()
    {
        for event in ["joinRoom", "history"] {
            let id = format!("dup-{event}-{n}");
            let frames = w.bob.call_text(&format!(r#"{{"event":"{event}","data":{data},"id":"{id}"}}"#), &id).await;
            let last = frames.last().unwrap();
            match last["event"].as_str() {
                Some("ack") => assert_eq!(last["data"]["requestId"], r2.as_str(), "{frames:?}"),
                _ => assert!(matches!(last["data"]["code"].as_str(), Some("FORBIDDEN" | "BAD_REQUEST")), "{last}"),
            }
            attempts += 1;
        }
    }
    w.bob.drain().await;
    w.assert_bob_saw_nothing_of_r1();
    w.assert_r1_untouched(&before).await;
    w.assert_r1_still_live_and_bob_not_in_it().await;
    eprintln!("security: {attempts} refused attempts on another teacher's room");
}

#[tokio::test]
async fn r1_ids_used_in_a_teachers_own_room_reveal_and_mark_nothing() {
    let mut w = world().await;
    let before = stored(&w.server, &w.r1).await;
    let r2 = w.r2.clone();
    let mine = w.r2_from_carol.clone();
    for event in ["ackMessages", "readMessages"] {
        // Only R1's ids: nothing is marked and nothing is announced.
        for data in [
            json!({"requestId": r2, "messages": w.r1_ids}),
            json!({"resquestId": r2, "messages": w.r1_ids}),
            json!({"requestId": r2, "resquestId": r2, "messages": w.r1_ids, "userId": ALICE, "senderId": ALICE}),
        ] {
            let frames = w.bob.call(json!({"event": event, "data": data})).await;
            assert_eq!(frames.len(), 1, "{event}: nothing is announced: {frames:?}");
            assert_eq!(frames[0]["event"], "ack");
            assert_eq!(frames[0]["data"], json!({"requestId": r2, "messages": []}), "{event}");
        }
    }
    // Mixed with a message of R2: only that one is marked, for Bob, and announced in R2 only.
    let mut mixed = w.r1_ids.clone();
    mixed.insert(1, mine.clone());
    let frames = w
        .bob
        .call(json!({"event": "ackMessages", "data": {"requestId": r2, "messages": mixed, "userId": ALICE}}))
        .await;
    assert_eq!(frames.len(), 2, "{frames:?}");
    assert_eq!(frames[0]["event"], "messagesDelivered");
    assert_eq!(
        (frames[0]["data"]["requestId"].as_str(), frames[0]["data"]["userId"].as_str()),
        (Some(&*r2), Some(BOB))
    );
    assert_eq!(hex_ids(&frames[0]["data"]["messages"]), [mine.as_str()]);
    assert_eq!(hex_ids(&frames[1]["data"]["messages"]), [mine.as_str()]);
    let frames = w.bob.call(json!({"event": "readMessages", "data": {"resquestId": r2, "messages": mixed}})).await;
    assert_eq!(frames.len(), 2, "{frames:?}");
    assert_eq!((frames[0]["event"].as_str(), frames[0]["data"]["userId"].as_str()), (Some("messageReads"), Some(BOB)));
    assert_eq!(hex_ids(&frames[1]["data"]["messages"]), [mine.as_str()]);

    // R1's ids as cursors in R2 page nothing: they are refused exactly like ids that exist
    // nowhere, so they do not even tell that they exist.
    let last = w.r1_ids.last().unwrap().clone();
    for (event, data, field) in [
        ("joinRoom", json!({"requestId": r2, "after": w.r1_ids[0]}), "after"),
        ("history", json!({"requestId": r2, "before": last}), "before"),
        ("history", json!({"requestId": r2, "after": last}), "after"),
        ("history", json!({"resquestId": r2, "before": "ffffffffffffffffffffffff"}), "before"),
        ("joinRoom", json!({"requestId": r2, "after": "000000000000000000000000"}), "after"),
    ] {
        let frames = w.bob.call(json!({"event": event, "data": data})).await;
        assert_eq!(frames.len(), 1, "no page for a foreign cursor: {frames:?}");
        let e = &frames[0]["data"];
        let code = if field == "after" { "UNKNOWN_AFTER" } else { "BAD_REQUEST" };
        assert_eq!((frames[0]["event"].as_str(), e["code"].as_str()), (Some("error"), Some(code)), "{e}");
        assert_eq!(e["message"], format!("field data.{field} must be the id of a message of this room"));
        assert_eq!(e["requestId"], r2.as_str());
    }
    // Alice's client message id in Bob's room makes a new message of Bob's, not a retry of hers.
    let data = json!({"requestId": r2, "message": "bob's own", "clientMessageId": "r1-cmid-0", "senderId": ALICE});
    let m = w.bob.call(json!({"event": "message", "data": data})).await;
    let stored_m = &m.last().unwrap()["data"];
    assert_eq!((stored_m["senderId"].as_str(), stored_m["message"].as_str()), (Some(BOB), Some("bob's own")));
    assert!(!w.r1_ids.iter().any(|id| stored_m["id"] == id.as_str()));
    // Bob chose that string himself, so it is no leak in his own frames.
    w.r1_secrets.retain(|s| s != "r1-cmid-0");

    // Carol's receipts in the store: Bob's marks are on R2's message only.
    let r2_store = stored(&w.server, &r2).await;
    let carols = r2_store.messages.iter().find(|m| m.id.to_hex() == mine).unwrap();
    assert_eq!(carols.delivered_to().iter().map(|r| r.user.as_str()).collect::<Vec<_>>(), [BOB]);
    assert_eq!(carols.read_by().iter().map(|r| r.user.as_str()).collect::<Vec<_>>(), [BOB]);

    w.bob.drain().await;
    w.assert_bob_saw_nothing_of_r1();
    w.assert_r1_untouched(&before).await;
    w.assert_r1_still_live_and_bob_not_in_it().await;
}

#[tokio::test]
async fn a_missing_request_is_answered_exactly_like_a_forbidden_one() {
    let w = world().await;
    let mut bob = w.bob;
    let missing = new_request_id().to_hex();
    let mut carol = Spy { c: w.carol, seen: Vec::new(), n: 0 };
    // Strip what legitimately differs: the correlation id and the requestId echoed back.
    let normalized = |frames: Vec<Value>, rid: &str| {
        assert_eq!(frames.len(), 1, "{frames:?}");
        let mut f = frames.into_iter().next().unwrap();
        assert_eq!(f["data"]["requestId"], rid, "{f}");
        f["data"]["requestId"] = json!("<rid>");
        f.as_object_mut().unwrap().remove("id");
        f
    };
    let mut answers = Vec::new();
    for event in room_events() {
        for field in ["requestId", "resquestId", "both"] {
            let data = |rid: &str| {
                let mut d = payloads(event, &w.r1_ids)[0].clone();
                if field != "resquestId" {
                    d["requestId"] = json!(rid);
                }
                if field != "requestId" {
                    d["resquestId"] = json!(rid);
                }
                d
            };
            let forbidden = normalized(bob.call(json!({"event": event, "data": data(&w.r1)})).await, &w.r1);
            let absent = normalized(bob.call(json!({"event": event, "data": data(&missing)})).await, &missing);
            // A LAB user may act on every existing request, so a missing one is its only refusal.
            let absent_for_lab =
                normalized(carol.call(json!({"event": event, "data": data(&missing)})).await, &missing);
            assert_eq!(forbidden["data"]["code"], "FORBIDDEN", "{forbidden}");
            assert_eq!(absent, forbidden, "{event} via {field}: a missing request must look forbidden");
            assert_eq!(absent_for_lab, forbidden, "{event} via {field}: the same for LAB users");
            answers.push(forbidden["data"]["message"].clone());
        }
    }
    assert!(answers.windows(2).all(|p| p[0] == p[1]), "one message for every refusal: {answers:?}");
}

#[tokio::test]
async fn sender_and_receipt_identity_come_from_the_token_only() {
    let mut w = world().await;
    let (r1, r2) = (w.r1.clone(), w.r2.clone());
    let forged = json!({
        "senderId": ALICE, "senderRole": "TEACHER", "userId": ALICE,
        "createdBy": ALICE, "sub": ALICE, "role": "TEACHER",
    });
    // Carol (LAB) claims to be Alice, in data and at the top level.
    let mut data = merged(json!({"requestId": r1, "message": "from carol"}).as_object().unwrap(), &forged);
    data["clientMessageId"] = json!("forged-1");
    let mut frame = forged.clone();
    frame["event"] = json!("message");
    frame["data"] = data;
    frame["id"] = json!("forge");
    w.carol.send(frame).await;
    let mut frames = [w.carol.recv().await, w.carol.recv().await];
    frames.sort_by_key(|f| f["event"].to_string());
    assert_eq!(frames[0]["event"], "ack");
    let m = frames[0]["data"].clone();
    assert_eq!((m["senderId"].as_str(), m["senderRole"].as_str()), (Some(CAROL), Some("LAB")), "{m}");
    assert_eq!(frames[1]["data"], m, "the broadcast says the same");
    assert_eq!(w.alice.expect("message").await, m, "Alice sees Carol as the sender");

    // Alice (TEACHER) claims to be LAB staff.
    let a = w
        .alice
        .ok(
            "message",
            json!({"requestId": r1, "message": "from alice", "senderId": CAROL, "senderRole": "LAB", "role": "LAB"}),
        )
        .await;
    assert_eq!((a["senderId"].as_str(), a["senderRole"].as_str()), (Some(ALICE), Some("TEACHER")));
    assert_eq!(w.carol.expect("message").await, a);

    // Bob claims to be Alice in his own room; and marks Carol's R2 message "as Alice".
    let data = merged(json!({"requestId": r2, "message": "from bob"}).as_object().unwrap(), &forged);
    let b = w.bob.call(json!({"event": "message", "data": data})).await;
    let b = &b.last().unwrap()["data"];
    assert_eq!((b["senderId"].as_str(), b["senderRole"].as_str()), (Some(BOB), Some("TEACHER")));
    let data = json!({"requestId": r2, "messages": [w.r2_from_carol], "userId": ALICE, "senderId": ALICE});
    let frames = w.bob.call(json!({"event": "readMessages", "data": data})).await;
    assert!(frames.iter().filter(|f| f["event"] != "ack").all(|f| f["data"]["userId"] == BOB), "{frames:?}");

    // Carol reads Alice's message "as Alice": the receipt is Carol's.
    let frames = carol_reads(&mut w.carol, &r1, a["id"].as_str().unwrap()).await;
    assert!(frames.iter().filter(|f| f["event"] != "ack").all(|f| f["data"]["userId"] == CAROL), "{frames:?}");

    // The store agrees.
    let r1_store = stored(&w.server, &r1).await;
    let find = |id: &Value| r1_store.messages.iter().find(|x| x.id.to_hex() == id.as_str().unwrap()).unwrap().clone();
    let stored_c = find(&m["id"]);
    assert_eq!((stored_c.sender_id.as_str(), stored_c.sender_role.as_str()), (CAROL, "LAB"));
    let stored_a = find(&a["id"]);
    assert_eq!((stored_a.sender_id.as_str(), stored_a.sender_role.as_str()), (ALICE, "TEACHER"));
    assert_eq!(stored_a.read_by().iter().map(|r| r.user.as_str()).collect::<Vec<_>>(), [CAROL]);
    let r2_store = stored(&w.server, &r2).await;
    let stored_b = r2_store.messages.iter().find(|x| x.id.to_hex() == b["id"].as_str().unwrap()).unwrap();
    assert_eq!((stored_b.sender_id.as_str(), stored_b.sender_role.as_str()), (BOB, "TEACHER"));
    let carols = r2_store.messages.iter().find(|x| x.id.to_hex() == w.r2_from_carol).unwrap();
    assert_eq!(carols.read_by().iter().map(|r| r.user.as_str()).collect::<Vec<_>>(), [BOB]);
    assert!(r2_store.messages.iter().all(|x| x.sender_id.as_str() != ALICE));
}

async fn carol_reads(carol: &mut Client, r1: &str, id: &str) -> Vec<Value> {
    carol.call("readMessages", json!({"requestId": r1, "messages": [id], "userId": ALICE, "senderId": ALICE})).await
}

#[tokio::test]
async fn a_teacher_whose_sub_differs_only_by_case_or_whitespace_is_another_teacher() {
    let mut w = world().await;
    let before = stored(&w.server, &w.r1).await;
    let r1 = w.r1.clone();
    let lookalikes = [
        "Teacher-Alice",
        "TEACHER-ALICE",
        "teacher-alicE",
        " teacher-alice",
        "teacher-alice ",
        "\tteacher-alice",
        "teacher-alice\n",
        "teacher-alice\u{a0}",
        "teacher-alice\u{200b}",
        "teacher\u{2010}alice",
        "ｔeacher-alice",
    ];
    for sub in lookalikes {
        let mut t = Spy::connect(&w.server, sub, "TEACHER").await;
        for event in room_events() {
            for payload in payloads(event, &w.r1_ids) {
                for form in r1_forms(&r1) {
                    let e = t.refused(event, merged(&form, &payload), "FORBIDDEN").await;
                    assert_eq!(e["requestId"], r1.as_str());
                }
            }
        }
        t.drain().await;
        w.bob.seen.extend(t.seen);
    }
    w.assert_bob_saw_nothing_of_r1();
    w.assert_r1_untouched(&before).await;

    // The role is what counts: LAB users (whatever their id, even a teacher's) may act on R1,
    // and Alice herself may.
    for (sub, role) in lookalikes.iter().map(|s| (*s, "LAB")).chain([(BOB, "LAB"), (ALICE, "LAB"), (ALICE, "TEACHER")])
    {
        let mut c = Client::connect(&w.server.url(), &token(sub, role)).await;
        let mut history = c.join(&r1).await;
        // The joining user's own unread fields are set apart: they are not the room's history.
        let joined = history.as_object_mut().unwrap();
        assert!(joined.remove("unread").is_some() && joined.remove("firstUnreadId").is_some(), "{sub:?}");
        // A join's page also lists the room's members (a `history` page does not).
        let presence = history.as_object_mut().unwrap();
        assert!(presence.remove("members").is_some_and(|m| m.is_array()));
        assert!(presence.remove("membersCount").is_some() && presence.remove("membersNext").is_some());
        assert_eq!(history, w.r1_history, "{sub:?} as {role}");
        c.ok("history", json!({"resquestId": r1})).await;
        c.ok("leaveRoom", json!({"requestId": r1})).await;
    }
}

#[tokio::test]
async fn a_refresh_token_never_switches_the_connection_to_another_user() {
    let mut w = world().await;
    let before = stored(&w.server, &w.r1).await;
    let r1 = w.r1.clone();
    let exp = now_secs() + 3600;
    let rsa = EncodingKey::from_rsa_pem(&fixture("rsa-private.pem")).unwrap();
    let other_key = EncodingKey::from_secret(b"another-secret-of-enough-length");
    for claims in [json!({"sub": ALICE, "role": "TEACHER", "exp": exp}), json!({"sub": BOB, "role": "LAB", "exp": exp})]
    {
        for (name, bad) in [
            ("another key", sign_with(&claims, Algorithm::HS256, &other_key)),
            ("another HMAC algorithm", sign_with(&claims, Algorithm::HS512, &EncodingKey::from_secret(SECRET))),
            ("RS256", sign_with(&claims, Algorithm::RS256, &rsa)),
            ("alg none", unsigned(&claims)),
            ("alg none, no signature part", unsigned(&claims).trim_end_matches('.').to_owned()),
            ("garbage", "a.b.c".to_owned()),
        ] {
            let frames = w.bob.call(json!({"event": "refreshToken", "data": {"token": bad}})).await;
            assert_eq!(frames.len(), 1, "{frames:?}");
            assert_eq!(frames[0]["data"]["code"], "UNAUTHORIZED", "{name} {claims}: {}", frames[0]);
            // Still Bob, still a teacher: R1 stays closed.
            w.bob.refused("joinRoom", json!({"requestId": r1}), "FORBIDDEN").await;
            w.bob.refused("history", json!({"requestId": r1}), "FORBIDDEN").await;
        }
    }
    w.bob.drain().await;
    w.assert_bob_saw_nothing_of_r1();
    w.assert_r1_untouched(&before).await;

    // A valid token for another user, or for Bob with another role, closes the connection.
    for claims in [json!({"sub": ALICE, "role": "TEACHER", "exp": exp}), json!({"sub": BOB, "role": "LAB", "exp": exp})]
    {
        let mut c = Spy::connect(&w.server, BOB, "TEACHER").await;
        let e = c.refused("refreshToken", json!({"token": sign(&claims)}), "FORBIDDEN").await;
        assert!(e.get("requestId").is_none());
        assert_eq!(c.c.expect_close().await, 4003, "{claims}");
    }
}
