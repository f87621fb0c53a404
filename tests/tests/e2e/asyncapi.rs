//! `docs/asyncapi.yaml` is the wire contract users' tools read. These tests keep it honest: every
//! frame a real server sends in a session that produces every server event is validated against
//! the JSON Schema of its event in that document, and so is every frame the test sends; frames
//! the server refuses as malformed must be refused by the schemas too, and mutated frames must
//! fail, so the check can fail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use labchat_domain::{ClientMessageId, MessageText, Request, RequestId, UserId};
use labchat_tests::asyncapi::{SERVER_EVENTS, Schemas, deref_pointer, errors, mutated};
use labchat_tests::client::{Ws, handshake_bearer, handshake_protocols, refusal};
use labchat_tests::harness::{TestServer, new_request_id, now_secs, settings, sign, token};
use labchat_transport_ws::protocol::{self, CLIENT_EVENTS, Command, ErrorCode, ErrorFrame};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as WsMessage;

const WAIT: Duration = Duration::from_secs(5);

/// The document's schemas, compiled, and what a session has shown of them.
struct Contract {
    schemas: Schemas,
    seen: RefCell<Seen>,
    /// Correlation ids are unique across the connections of a test.
    next_id: Cell<u64>,
}

#[derive(Default, Debug)]
struct Seen {
    client_events: BTreeSet<String>,
    server_events: BTreeSet<String>,
    /// Client events an `ack` was received for.
    acked: BTreeSet<String>,
    error_codes: BTreeSet<String>,
    close_codes: BTreeSet<u16>,
    features: BTreeSet<&'static str>,
    /// Correlation id (as JSON text) -> the client event that carried it.
    pending: HashMap<String, String>,
}

impl Contract {
    fn load() -> Self {
        Self { schemas: Schemas::load(), seen: RefCell::default(), next_id: Cell::new(0) }
    }

    fn fresh_id(&self) -> Value {
        let n = self.next_id.get() + 1;
        self.next_id.set(n);
        // Both documented kinds of correlation id: integers and strings.
        if n.is_multiple_of(2) { json!(n) } else { json!(format!("c-{n}")) }
    }

    /// A frame the test sends: must be valid.
    fn sent(&self, frame: &Value) {
        let errs = self.schemas.client_errors(frame);
        assert!(errs.is_empty(), "client frame {frame} violates the document: {errs:#?}");
        let event = frame["event"].as_str().unwrap().to_owned();
        let mut seen = self.seen.borrow_mut();
        if let Some(id) = frame.get("id") {
            seen.pending.insert(id.to_string(), event.clone());
        }
        seen.client_events.insert(event);
    }

    /// A malformed frame the test sends: the schema must refuse it as the server does.
    fn sent_invalid(&self, frame: &Value) {
        assert!(!self.schemas.client_ok(frame), "the document accepts the malformed frame {frame}");
        if let Some(id) = frame.get("id") {
            self.seen.borrow_mut().pending.insert(id.to_string(), frame["event"].as_str().unwrap().to_owned());
        }
    }

    /// A frame the server sent: must be valid against its event's schema.
    fn received(&self, frame: &Value) {
        let errs = self.schemas.server_errors(frame);
        let event = frame["event"].as_str().unwrap();
        assert!(errs.is_empty(), "server frame {frame} violates the document: {errs:#?}");
        let mut seen = self.seen.borrow_mut();
        seen.server_events.insert(event.to_owned());
        let data = &frame["data"];
        match event {
            "ack" => {
                let acked = seen.pending.get(&frame["id"].to_string()).cloned();
                let acked = acked.unwrap_or_else(|| panic!("ack for an id never sent: {frame}"));
                // The ack's data is the variant documented for the acked event.
                let variant = match acked.as_str() {
                    "joinRoom" | "leaveRoom" | "history" | "typing" => "AckRoom",
                    "message" | "editMessage" | "deleteMessage" => "ChatMessage",
                    "ackMessages" | "readMessages" => "AckMarked",
                    "refreshToken" => "AckRefreshed",
                    other => panic!("ack of unknown event {other}"),
                };
                let errs = errors(&self.schemas.named(variant), data);
                assert!(errs.is_empty(), "ack of {acked} is not a {variant}: {frame}: {errs:#?}");
                seen.acked.insert(acked);
            }
            "roomHistory" => {
                let msgs = data["messages"].as_array().unwrap();
                let non_empty = |m: &Value, k: &str| m[k].as_array().is_some_and(|a| !a.is_empty());
                if msgs.iter().any(|m| non_empty(m, "deliveredTo") && non_empty(m, "readBy")) {
                    seen.features.insert("roomHistory with receipts");
                }
                if msgs.iter().any(|m| m.get("clientMessageId").is_some()) {
                    seen.features.insert("roomHistory with a clientMessageId");
                }
            }
            "message" if data.get("clientMessageId").is_some() => {
                seen.features.insert("message with a clientMessageId");
            }
            "error" => {
                seen.error_codes.insert(data["code"].as_str().unwrap().to_owned());
                seen.features.insert(if frame.get("id").is_some() { "error with id" } else { "error without id" });
                if data.get("requestId").is_some() {
                    seen.features.insert("error with requestId");
                }
                if data.get("event").is_none() {
                    seen.features.insert("error without event");
                }
                if data.get("retryAfterMs").is_some() {
                    seen.features.insert("error with retryAfterMs");
                }
            }
            _ => {}
        }
    }

    fn closed(&self, code: u16) {
        assert!(self.schemas.named("CloseCode").is_valid(&json!(code)), "close code {code} is not documented");
        self.seen.borrow_mut().close_codes.insert(code);
    }

    fn refused(&self, status: u16, body: &Value) {
        let errs = errors(&self.schemas.named("HandshakeRefusal"), body);
        assert!(errs.is_empty(), "HTTP {status} refusal {body} violates the document: {errs:#?}");
        self.seen.borrow_mut().features.insert(match status {
            401 => "HTTP 401 refusal",
            403 => "HTTP 403 refusal",
            503 => "HTTP 503 refusal",
            _ => "other HTTP refusal",
        });
    }
}

enum Next {
    Frame(Value),
    Close(u16),
    Timeout,
}

/// One connection whose every frame in and out goes through the contract.
struct Peer<'a> {
    ws: Ws,
    contract: &'a Contract,
}

impl<'a> Peer<'a> {
    /// Connects with `Authorization: Bearer`.
    async fn bearer(contract: &'a Contract, url: &str, jwt: &str) -> Self {
        let (ws, _) = handshake_bearer(url, jwt).await.expect("handshake");
        Self { ws, contract }
    }

    /// Connects the way browsers do: subprotocols `labchat.v1` and `bearer.<JWT>`.
    async fn subprotocol(contract: &'a Contract, url: &str, jwt: &str) -> Self {
        let (ws, resp) = handshake_protocols(url, &["labchat.v1", &format!("bearer.{jwt}")]).await.expect("handshake");
        assert_eq!(resp.headers().get("sec-websocket-protocol").unwrap(), "labchat.v1");
        Self { ws, contract }
    }

    async fn send(&mut self, frame: Value) {
        self.contract.sent(&frame);
        self.ws.send(WsMessage::text(frame.to_string())).await.expect("send");
    }

    async fn send_invalid(&mut self, frame: Value) {
        self.contract.sent_invalid(&frame);
        self.ws.send(WsMessage::text(frame.to_string())).await.expect("send");
    }

    async fn next(&mut self, wait: Duration) -> Next {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let Ok(msg) = tokio::time::timeout_at(deadline, self.ws.next()).await else { return Next::Timeout };
            match msg {
                Some(Ok(WsMessage::Text(t))) => {
                    let frame: Value = serde_json::from_str(t.as_str()).expect("server sent JSON");
                    self.contract.received(&frame);
                    return Next::Frame(frame);
                }
                Some(Ok(WsMessage::Close(Some(f)))) => {
                    let code = u16::from(f.code);
                    self.contract.closed(code);
                    return Next::Close(code);
                }
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => {}
                other => panic!("unexpected websocket message {other:?}"),
            }
        }
    }

    async fn recv(&mut self) -> Value {
        match self.next(WAIT).await {
            Next::Frame(f) => f,
            Next::Close(code) => panic!("closed with {code} while waiting for a frame"),
            Next::Timeout => panic!("no frame within {WAIT:?}"),
        }
    }

    async fn expect(&mut self, event: &str) -> Value {
        let f = self.recv().await;
        assert_eq!(f["event"], event, "unexpected frame {f}");
        f["data"].clone()
    }

    async fn expect_close(&mut self) -> u16 {
        loop {
            match self.next(WAIT).await {
                Next::Frame(_) => {}
                Next::Close(code) => return code,
                Next::Timeout => panic!("no close within {WAIT:?}"),
            }
        }
    }

    fn fresh_id(&self) -> Value {
        self.contract.fresh_id()
    }

    async fn until_reply(&mut self, id: &Value) -> Vec<Value> {
        let mut frames = Vec::new();
        loop {
            let f = self.recv().await;
            let done = f.get("id") == Some(id) && (f["event"] == "ack" || f["event"] == "error");
            frames.push(f);
            if done {
                return frames;
            }
        }
    }

    /// Sends `{event, data, id}` and returns every frame up to the `ack` or `error` with that id.
    async fn call(&mut self, event: &str, data: Value) -> Vec<Value> {
        let id = self.fresh_id();
        self.send(json!({"event": event, "data": data, "id": id})).await;
        self.until_reply(&id).await
    }

    /// [`Peer::call`] for a success; returns the ack's data.
    async fn ok(&mut self, event: &str, data: Value) -> Value {
        let frames = self.call(event, data).await;
        let last = frames.last().unwrap();
        assert_eq!(last["event"], "ack", "{event} failed: {last}");
        last["data"].clone()
    }

    /// [`Peer::call`] for a failure; returns the error's data.
    async fn err(&mut self, event: &str, data: Value) -> Value {
        let frames = self.call(event, data).await;
        let last = frames.last().unwrap();
        assert_eq!(last["event"], "error", "{event} should have failed: {last}");
        last["data"].clone()
    }
}

fn server_with(rooms: &[(RequestId, &str)], tweak: impl FnOnce(&mut labchat::app::Settings)) -> labchat::app::Settings {
    let mut s = settings();
    s.store = labchat::app::StoreSettings::Memory {
        seed: rooms.iter().map(|(id, by)| Request::new(*id, UserId::parse(*by).unwrap())).collect(),
    };
    tweak(&mut s);
    s
}

#[tokio::test]
async fn every_frame_of_a_real_session_matches_the_document() {
    let contract = Contract::load();
    let (r1, r2) = (new_request_id(), new_request_id());
    let server = TestServer::start_with(server_with(&[(r1, "t1"), (r2, "t2")], |_| {})).await;
    let url = server.url();
    let rid = r1.to_hex();

    // The `root` channel's promise: `GET /` without an upgrade serves the demo page.
    let get = |path: &'static str| async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
        let mut out = String::new();
        tokio::time::timeout(WAIT, s.read_to_string(&mut out)).await.expect("GET answered").unwrap();
        out.to_ascii_lowercase()
    };
    let page = get("/").await;
    assert!(page.starts_with("http/1.1 200"), "{page}");
    assert!(page.contains("content-type: text/html; charset=utf-8") && page.contains("/labchat-client.js"), "{page}");
    // And the browser bundle of @labchat/client it loads.
    let lib = get("/labchat-client.js").await;
    assert!(lib.starts_with("http/1.1 200") && lib.contains("content-type: text/javascript"), "{lib}");
    assert!(lib.contains("export { createclient"), "{}", &lib[..lib.len().min(300)]);
    assert!(lib.contains("labchat.v1"), "the library speaks the protocol's subprotocol");

    // Handshake refusals.
    for (result, status) in [
        (handshake_bearer(&url, "not-a-jwt").await, 401),
        (handshake_protocols(&url, &["labchat.v1"]).await, 401),
        (handshake_bearer(&url, &token("boss", "ADMIN")).await, 403),
    ] {
        let (got, body) = refusal(result);
        assert_eq!(got, status, "{body}");
        contract.refused(got, &body);
    }

    // A connection whose token expires in two seconds: read at the end.
    let mut expiring =
        Peer::bearer(&contract, &url, &sign(&json!({"sub":"t1","role":"TEACHER","exp":now_secs() + 2}))).await;

    let mut t = Peer::bearer(&contract, &url, &token("t1", "TEACHER")).await;
    let mut l = Peer::subprotocol(&contract, &url, &token("lab-1", "LAB")).await;

    let frames = t.call("joinRoom", json!({"requestId": rid})).await;
    assert_eq!((frames[0]["event"].as_str(), frames.len()), (Some("roomHistory"), 2));
    let frames = l.call("joinRoom", json!({"resquestId": rid})).await;
    assert_eq!(frames[0]["data"]["messages"], json!([]));
    assert_eq!(t.expect("memberJoined").await["userId"], "lab-1");
    l.ok("typing", json!({"requestId": rid})).await;
    assert_eq!(t.expect("typing").await["userId"], "lab-1");

    // Messages, with and without a clientMessageId; the sender gets the broadcast before the ack.
    let frames = t.call("message", json!({"requestId": rid, "message": "hello lab", "clientMessageId": "c-1"})).await;
    assert_eq!((frames[0]["event"].as_str(), frames[1]["event"].as_str()), (Some("message"), Some("ack")));
    let m1 = frames[1]["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(l.expect("message").await["id"], m1.as_str());
    let m2 = t.ok("message", json!({"requestId": rid, "message": "second"})).await["id"].as_str().unwrap().to_owned();
    l.expect("message").await;

    // Receipts: delivered, then read (which delivers m2 first).
    let frames = l.call("ackMessages", json!({"requestId": rid, "messages": [m1]})).await;
    assert_eq!(frames[0]["event"], "messagesDelivered");
    t.expect("messagesDelivered").await;
    let frames = l.call("readMessages", json!({"requestId": rid, "messages": [m1, m2.to_uppercase()]})).await;
    let events: Vec<&str> = frames.iter().map(|f| f["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["messagesDelivered", "messageReads", "ack"]);
    assert_eq!(t.expect("messagesDelivered").await["messages"], json!([m2]));
    assert_eq!(t.expect("messageReads").await["messages"], json!([m1, m2]));
    // Nothing new: an ack with no ids.
    assert_eq!(l.ok("ackMessages", json!({"requestId": rid, "messages": [m1]})).await["messages"], json!([]));

    // Without an id: a broadcast and no ack; a repeated clientMessageId: the original, to the sender.
    l.send(json!({"event": "message", "data": {"requestId": rid, "message": "reply"}})).await;
    l.expect("message").await;
    t.expect("message").await;
    t.send(json!({"event": "message", "data": {"requestId": rid, "message": "hello lab", "clientMessageId": "c-1"}}))
        .await;
    assert_eq!(t.expect("message").await["id"], m1.as_str());
    // The same clientMessageId with another text: refused, nothing stored.
    let reused = t.err("message", json!({"requestId": rid, "message": "again", "clientMessageId": "c-1"})).await;
    assert_eq!((&reused["code"], &reused["retryable"]), (&json!("CLIENT_MESSAGE_ID_REUSED"), &json!(false)));

    // History pages: with receipts and the clientMessageId.
    let frames = t.call("history", json!({"requestId": rid, "limit": 10})).await;
    assert_eq!(frames[0]["data"]["messages"].as_array().unwrap().len(), 3);
    let frames = t.call("history", json!({"requestId": rid, "before": m2, "limit": 1})).await;
    assert_eq!(frames[0]["data"]["messages"][0]["id"], m1.as_str());
    // A catch-up after m1: its receipts replayed first, then the page.
    let frames = t.call("joinRoom", json!({"requestId": rid, "after": m1})).await;
    let page = frames.iter().find(|f| f["event"] == "roomHistory").unwrap();
    assert_eq!(page["data"]["messages"].as_array().unwrap().len(), 2);
    assert_eq!(page["data"]["changesCut"], false);
    assert_eq!(frames[0]["event"], "messagesDelivered", "{frames:?}");

    // An edit and a delete: the acks, the room events and the tombstone in history.
    let frames = t.call("editMessage", json!({"requestId": rid, "messageId": m2, "message": "second, edited"})).await;
    assert_eq!(frames.last().unwrap()["data"]["editedAt"].as_str().map(str::len), Some(24));
    assert_eq!(l.expect("messageEdited").await["message"], "second, edited");
    let frames = l.call("deleteMessage", json!({"requestId": rid, "messageId": m2})).await;
    assert_eq!(frames.last().unwrap()["data"]["deletedBy"], "lab-1");
    assert_eq!(t.expect("messageDeleted").await["messageId"], m2.as_str());
    let frames = t.call("history", json!({"requestId": rid, "limit": 10})).await;
    let tombstone = frames[0]["data"]["messages"].as_array().unwrap().iter().find(|m| m["id"] == m2.as_str()).cloned();
    assert!(tombstone.is_some_and(|m| m.get("message").is_none() && m["deletedBy"] == "lab-1"), "{frames:?}");
    let refused = l.err("editMessage", json!({"requestId": rid, "messageId": m1, "message": "x"})).await;
    assert_eq!(refused["code"], "FORBIDDEN");

    // Token refresh, accepted and refused.
    t.ok("refreshToken", json!({"token": token("t1", "TEACHER")})).await;
    let refused = t.err("refreshToken", json!({"token": "garbage"})).await;
    assert_eq!((&refused["code"], &refused["retryable"]), (&json!("UNAUTHORIZED"), &json!(true)));

    // Errors: forbidden room, malformed frames (refused by the schema too), with and without ids.
    assert_eq!(t.err("joinRoom", json!({"requestId": r2.to_hex()})).await["code"], "FORBIDDEN");
    for (event, data) in [
        ("message", json!({"requestId": rid, "message": ""})),
        ("message", json!({"requestId": rid, "message": "x", "clientMessageId": "c".repeat(65)})),
        ("readMessages", json!({"requestId": rid, "messages": []})),
        ("history", json!({"requestId": rid, "limit": 0})),
        ("joinRoom", json!({"requestId": "not-an-object-id"})),
    ] {
        let id = t.fresh_id();
        t.send_invalid(json!({"event": event, "data": data, "id": id})).await;
        let frames = t.until_reply(&id).await;
        assert_eq!(frames.last().unwrap()["data"]["code"], "BAD_REQUEST", "{event} {data}");
    }
    for text in ["not json", r#"{"event":"dance","data":{}}"#, r#"{"event":"leaveRoom","data":{},"id":{"x":1}}"#] {
        t.ws.send(WsMessage::text(text)).await.unwrap();
        let e = t.expect("error").await;
        assert_eq!(e["code"], "BAD_REQUEST", "{text}");
    }
    t.ws.send(WsMessage::binary(vec![1, 2, 3])).await.unwrap();
    assert_eq!(t.expect("error").await["code"], "BAD_REQUEST");

    t.ok("leaveRoom", json!({"requestId": rid})).await;
    assert_eq!(l.expect("memberLeft").await["userId"], "t1");
    l.ok("leaveRoom", json!({"resquestId": rid})).await;

    // Refresh for another user: FORBIDDEN and close 4003.
    let mut other = Peer::bearer(&contract, &url, &token("lab-2", "LAB")).await;
    assert_eq!(other.err("refreshToken", json!({"token": token("lab-3", "LAB")})).await["code"], "FORBIDDEN");
    assert_eq!(other.expect_close().await, 4003);

    // A frame over the size limit: close 1009.
    let mut big = Peer::bearer(&contract, &url, &token("lab-4", "LAB")).await;
    big.ws.send(WsMessage::text("x".repeat(70 * 1024))).await.unwrap();
    assert_eq!(big.expect_close().await, 1009);

    // The expiring connection: TOKEN_EXPIRED without id, then close 4001.
    assert_eq!(expiring.expect("error").await["code"], "TOKEN_EXPIRED");
    assert_eq!(expiring.expect_close().await, 4001);

    // Shutdown: close 1001.
    let (_, code) = tokio::join!(server.stop(), t.expect_close());
    assert_eq!(code, 1001);
    drop(l);

    // A server with a low rate limit and room for one connection.
    let r3 = new_request_id();
    let limited = TestServer::start_with(server_with(&[(r3, "t1")], |s| {
        s.ws.rate_per_second = 1.0;
        s.ws.rate_burst = 2.0;
        s.ws.rate_close_after = Duration::from_millis(400);
        s.ws.max_connections = 1;
    }))
    .await;
    let mut c = Peer::bearer(&contract, &limited.url(), &token("lab-1", "LAB")).await;
    let (status, body) = refusal(handshake_bearer(&limited.url(), &token("lab-2", "LAB")).await);
    assert_eq!(status, 503);
    contract.refused(status, &body);
    let ids: Vec<Value> = (0..4).map(|_| c.fresh_id()).collect();
    for id in &ids {
        c.send(json!({"event": "leaveRoom", "data": {"requestId": r3.to_hex()}, "id": id})).await;
    }
    let mut codes = Vec::new();
    for _ in &ids {
        let f = c.recv().await;
        codes.push(f["data"]["code"].as_str().unwrap_or("ack").to_owned());
    }
    assert_eq!(codes, ["ack", "ack", "RATE_LIMITED", "RATE_LIMITED"]);
    // Keep hammering: closed with 1008.
    let deadline = tokio::time::Instant::now() + WAIT;
    let code = loop {
        assert!(tokio::time::Instant::now() < deadline, "no 1008 close while hammering");
        c.send(json!({"event": "leaveRoom", "data": {"requestId": r3.to_hex()}})).await;
        match c.next(Duration::from_millis(50)).await {
            Next::Close(code) => break code,
            Next::Frame(_) | Next::Timeout => {}
        }
    };
    assert_eq!(code, 1008);
    drop(c);
    limited.stop().await;

    // The session showed every documented event and every variant the test promises.
    let seen = contract.seen.borrow();
    // The inbox's events are checked the same way, in a session of their own, by `asyncapi_inbox`;
    // `members` and `membersChanged` by `asyncapi_presence`.
    let inbox = ["inbox", "subscribeInbox", "unsubscribeInbox", "inboxUpdate", "members", "membersChanged"];
    let all =
        |names: &[&str]| names.iter().filter(|s| !inbox.contains(s)).map(|s| (*s).to_owned()).collect::<BTreeSet<_>>();
    assert_eq!(seen.client_events, all(&CLIENT_EVENTS), "client events sent");
    assert_eq!(seen.server_events, all(&SERVER_EVENTS), "server events received");
    assert_eq!(seen.acked, all(&CLIENT_EVENTS), "acks received, by acked event");
    assert_eq!(
        seen.error_codes,
        all(&["BAD_REQUEST", "FORBIDDEN", "RATE_LIMITED", "TOKEN_EXPIRED", "UNAUTHORIZED", "CLIENT_MESSAGE_ID_REUSED"]),
        "error codes received (UNAVAILABLE and INTERNAL: see the encoder test)"
    );
    assert_eq!(seen.close_codes, [1001, 1008, 1009, 4001, 4003].into(), "close codes received");
    let features: BTreeSet<&str> = [
        "roomHistory with receipts",
        "roomHistory with a clientMessageId",
        "message with a clientMessageId",
        "error with id",
        "error without id",
        "error with requestId",
        "error without event",
        "error with retryAfterMs",
        "HTTP 401 refusal",
        "HTTP 403 refusal",
        "HTTP 503 refusal",
    ]
    .into();
    assert_eq!(seen.features, features);
}

/// Every error code, as the server's own encoder writes it, is valid; and the document lists
/// exactly the codes the server has.
#[test]
fn every_error_code_as_encoded_matches_the_document() {
    let contract = Contract::load();
    let all = [
        ErrorCode::BadRequest,
        ErrorCode::Forbidden,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
        ErrorCode::RateLimited,
        ErrorCode::TokenExpired,
        ErrorCode::Unauthorized,
        ErrorCode::UnknownAfter,
        ErrorCode::ClientMessageIdReused,
    ];
    // Fails to compile when a code is added, so that it gets added here and in the document.
    for code in all {
        match code {
            ErrorCode::BadRequest
            | ErrorCode::Forbidden
            | ErrorCode::Unavailable
            | ErrorCode::Internal
            | ErrorCode::RateLimited
            | ErrorCode::TokenExpired
            | ErrorCode::Unauthorized
            | ErrorCode::UnknownAfter
            | ErrorCode::ClientMessageIdReused => {}
        }
    }
    let names: BTreeSet<String> = all.iter().map(|c| serde_json::to_value(c).unwrap().to_string()).collect();
    let documented: BTreeSet<String> = contract.schemas.doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(Value::to_string)
        .collect();
    assert_eq!(names, documented);
    let rid = new_request_id();
    let send = |cid: Option<&str>| {
        Command::Message(protocol::Message {
            request_id: rid,
            text: MessageText::parse("hi", 10).unwrap(),
            client_message_id: cid.map(|c| ClientMessageId::parse(c).unwrap()),
        })
    };
    let commands = [
        None,
        Some(send(Some("3f2b8c1e-4d6a-4e0b-9a51-7c2d9e8f1a60"))),
        Some(send(None)),
        Some(Command::SubscribeInbox(protocol::SubscribeInbox)),
    ];
    for code in all {
        for (id, request_id) in [(None, None), (Some(json!("x-1")), Some(rid))] {
            for command in &commands {
                let frame = protocol::error(&ErrorFrame {
                    code,
                    message: "something",
                    event: request_id.map(|_| "message"),
                    request_id,
                    id: id.as_ref(),
                    retry_after_ms: (code == ErrorCode::RateLimited).then_some(250),
                    retryable: code.retryable(command.as_ref()),
                });
                contract.received(&serde_json::from_str(&frame).unwrap());
                if code == ErrorCode::Unavailable {
                    // As a join refused under load is encoded.
                    let busy = protocol::error(&ErrorFrame {
                        code,
                        message: "busy",
                        event: Some("joinRoom"),
                        request_id,
                        id: id.as_ref(),
                        retry_after_ms: Some(1200),
                        retryable: code
                            .retryable(Some(&Command::JoinRoom(protocol::JoinRoom { request_id: rid, after: None }))),
                    });
                    contract.received(&serde_json::from_str(&busy).unwrap());
                }
                // The document fixes `retryable` for every code whose answer does not depend on the frame.
                let mut flipped: Value = serde_json::from_str(&frame).unwrap();
                flipped["data"]["retryable"] = json!(!code.retryable(command.as_ref()));
                let fixed = !matches!(code, ErrorCode::Unavailable | ErrorCode::Internal);
                assert_eq!(contract.schemas.server_errors(&flipped).is_empty(), !fixed, "{flipped}");
            }
        }
    }
}

/// The document's own examples are valid, and mutations of valid frames are not: the schemas
/// are strict enough to catch drift.
#[test]
fn examples_are_valid_and_mutations_are_refused() {
    let schemas = Schemas::load();
    let mut checked = 0;
    for (name, msg) in schemas.doc["components"]["messages"].as_object().unwrap() {
        let payload = deref_pointer(&schemas.doc, format!("/components/messages/{name}/payload"));
        let v = schemas.validator(&payload);
        for ex in msg["examples"].as_array().unwrap_or_else(|| panic!("message {name} has no example")) {
            let errs = errors(&v, &ex["payload"]);
            assert!(errs.is_empty(), "example of {name} is invalid: {errs:#?}");
            checked += 1;
        }
    }
    assert!(checked >= 13, "{checked} examples");

    let server = |f: &Value| schemas.server[f["event"].as_str().unwrap()].is_valid(f);
    let client = |f: &Value| schemas.client[f["event"].as_str().unwrap()].is_valid(f);
    let message = json!({"event": "message", "data": {
        "id": "6751b6e01ad14eaa13a03314", "requestId": "6751b6df1ad14eaa13a03313", "seq": 1, "senderId": "t1",
        "senderRole": "TEACHER", "message": "hi", "createdAt": "2024-12-05T14:03:11.120Z",
        "deliveredTo": [{"userId": "lab-1", "at": "2024-12-05T14:03:12.004Z"}], "readBy": []}});
    assert!(server(&message));
    for (pointer, value) in [
        ("/data/extra", Some(json!(1))),
        ("/extra", Some(json!(1))),
        ("/id", Some(json!(1))),
        ("/data/id", Some(json!("6751B6E01AD14EAA13A03314"))),
        ("/data/id", Some(json!("6751b6e01ad14eaa13a0331"))),
        ("/data/createdAt", Some(json!("2024-12-05T14:03:11Z"))),
        ("/data/createdAt", Some(json!("2024-12-05T14:03:11.120+00:00"))),
        ("/data/senderRole", Some(json!("ADMIN"))),
        ("/data/readBy", None),
        ("/data/seq", None),
        ("/data/seq", Some(json!(0))),
        ("/data/deliveredTo/0/extra", Some(json!(true))),
    ] {
        assert!(!server(&mutated(&message, pointer, value.clone())), "accepted a message with {pointer} = {value:?}");
    }
    let error = |data: Value| json!({"event": "error", "data": data});
    assert!(server(&error(json!({"code": "RATE_LIMITED", "message": "m", "retryable": true, "retryAfterMs": 5}))));
    assert!(!server(&error(json!({"code": "RATE_LIMITED", "message": "m", "retryable": true}))));
    assert!(!server(&error(json!({"code": "FORBIDDEN", "message": "m", "retryable": true}))));
    // A join refused under load: `UNAVAILABLE` with `retryAfterMs`, only for `joinRoom`, retryable.
    let busy =
        json!({"code": "UNAVAILABLE", "message": "m", "event": "joinRoom", "retryable": true, "retryAfterMs": 9});
    assert!(server(&error(busy.clone())));
    for (field, value) in [("event", json!("message")), ("retryable", json!(false)), ("retryAfterMs", json!(0))] {
        let mut bad = busy.clone();
        bad[field] = value;
        assert!(!server(&error(bad.clone())), "accepted {bad}");
    }
    let mut no_event = busy.clone();
    no_event.as_object_mut().unwrap().remove("event");
    assert!(!server(&error(no_event)));
    assert!(!server(&error(json!({"code": "FORBIDDEN", "message": "m", "retryable": false, "retryAfterMs": 5}))));
    assert!(!server(&error(
        json!({"code": "INTERNAL", "message": "m", "event": "joinRoom", "retryable": true, "retryAfterMs": 5})
    )));
    assert!(!server(&error(json!({"code": "NOPE", "message": "m", "retryable": false}))));
    assert!(!server(&json!({"event": "ack", "data": {"requestId": "6751b6df1ad14eaa13a03313"}})), "ack needs id");

    let join = |data: Value, id: Value| json!({"event": "joinRoom", "data": data, "id": id});
    assert!(client(&join(json!({"requestId": "6751B6DF1AD14EAA13A03313"}), json!("x".repeat(64)))));
    assert!(!client(&join(json!({"requestId": "6751b6df1ad14eaa13a0331g"}), json!(1))));
    assert!(!client(&join(json!({"requestId": "6751b6df1ad14eaa13a03313"}), json!("x".repeat(65)))));
    assert!(!client(&join(json!({"requestId": "6751b6df1ad14eaa13a03313"}), json!(1.5))));
    assert!(!client(&join(json!({}), json!(1))));
    let ids: Vec<String> = (0..501).map(|i| format!("{i:024x}")).collect();
    assert!(!client(&json!({"event": "ackMessages", "data": {"requestId": ids[0], "messages": ids}})));
    assert!(client(&json!({"event": "ackMessages", "data": {"requestId": ids[0], "messages": ids[..500]}})));
    assert!(!client(&json!({"event": "message", "data": {"requestId": ids[0], "message": " \n "}})));
    assert!(!client(&json!({"event": "refreshToken", "data": {"token": ""}})));
}
