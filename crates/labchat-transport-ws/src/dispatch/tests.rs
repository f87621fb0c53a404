//! Tests of one connection's frames through the dispatcher, on the in-memory adapters: replies,
//! error frames and outcomes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{SystemTime, UNIX_EPOCH};

use labchat_core::{Chat, Clock, SinkId};
use labchat_domain::{HistoryLimit, Request, Role, Timestamp, User, UserId};
use labchat_memory::{LocalBroadcaster, MemoryPresence, MemoryStore};
use serde_json::json;

use std::sync::Arc;

use labchat_domain::RequestId;
use serde_json::Value;

use super::*;
use crate::auth::{AuthSettings, Authenticator, JwtAlgorithm, Principal};
use crate::close::{self, End};
use crate::config::WsConfig;
use crate::outbound::ConnSink;

const SECRET: &[u8] = b"dispatch-test-secret-0123456789";

struct WallClock;

impl Clock for WallClock {
    fn now(&self) -> Timestamp {
        let ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis();
        Timestamp::from_unix_millis(i64::try_from(ms).unwrap())
    }
}

struct Fixture {
    server: Server,
    store: Arc<MemoryStore>,
}

fn fixture() -> Fixture {
    let store = Arc::new(MemoryStore::new());
    let clock: Arc<dyn Clock> = Arc::new(WallClock);
    let chat = Chat::new(store.clone(), Arc::new(LocalBroadcaster::new()), Arc::clone(&clock), HistoryLimit::DEFAULT)
        .with_presence(Arc::new(MemoryPresence::new()));
    let auth = Authenticator::new(&AuthSettings {
        algorithm: JwtAlgorithm::Hs256,
        key: SECRET.to_vec(),
        issuer: None,
        audience: None,
        role_claim: "role".into(),
    })
    .unwrap();
    Fixture { server: Server::new(Arc::new(chat), auth, WsConfig::default(), clock), store }
}

impl Fixture {
    fn request(&self, n: u8, creator: &str) -> RequestId {
        let id = RequestId::parse(&format!("{n:02x}").repeat(12)).unwrap();
        self.store.add_request(Request::new(id, UserId::parse(creator).unwrap()));
        id
    }
}

fn session(user: &str, role: Role) -> Session {
    let principal = Principal {
        user: User::new(UserId::parse(user).unwrap(), role),
        expires_at: Timestamp::from_unix_millis(WallClock.now().unix_millis() + 600_000),
    };
    Session::new(principal, Arc::new(ConnSink::new(SinkId(7), 64, 1 << 20).for_user(UserId::parse(user).unwrap())))
}

fn token(sub: &str, role: &str) -> String {
    token_for(sub, role, 3600)
}

/// A token that expires `secs` from now.
fn token_for(sub: &str, role: &str, secs: u64) -> String {
    let exp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + secs;
    let claims = json!({"sub": sub, "role": role, "exp": exp});
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &jsonwebtoken::EncodingKey::from_secret(SECRET))
        .unwrap()
}

/// The frames queued so far, as JSON.
fn sent(s: &Session) -> Vec<Value> {
    std::iter::from_fn(|| s.sink.try_take()).map(|f| serde_json::from_str(f.as_str()).unwrap()).collect()
}

#[tokio::test]
async fn join_replies_room_history_then_ack() {
    let f = fixture();
    let rid = f.request(1, "t").to_hex();
    let mut s = session("lab", Role::Lab);
    let frame = json!({"event": "joinRoom", "data": {"requestId": rid}, "id": 1}).to_string();
    assert_eq!(s.handle(&f.server, &frame).await, Outcome::Done);
    let frames = sent(&s);
    let events: Vec<_> = frames.iter().map(|f| f["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["roomHistory", "ack"], "{frames:?}");
    assert_eq!(frames[1]["id"], 1);
    assert_eq!(s.rooms.len(), 1);
}

#[tokio::test]
async fn a_teacher_on_anothers_request_gets_forbidden() {
    let f = fixture();
    let rid = f.request(2, "someone-else").to_hex();
    let mut s = session("teacher", Role::Teacher);
    let frame = json!({"event": "joinRoom", "data": {"requestId": rid}, "id": "j"}).to_string();
    assert_eq!(s.handle(&f.server, &frame).await, Outcome::Done);
    let frames = sent(&s);
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0]["event"], "error");
    assert_eq!(frames[0]["data"]["code"], "FORBIDDEN");
    assert_eq!(frames[0]["id"], "j");
    assert!(s.rooms.is_empty());
}

#[tokio::test]
async fn a_duplicate_send_without_id_gets_the_original_message_back() {
    let f = fixture();
    let rid = f.request(3, "t").to_hex();
    let mut s = session("lab", Role::Lab);
    let frame =
        json!({"event": "message", "data": {"requestId": rid, "message": "hi", "clientMessageId": "c-1"}}).to_string();
    assert_eq!(s.handle(&f.server, &frame).await, Outcome::Done);
    assert!(sent(&s).is_empty(), "a first send without id gets no reply");
    assert_eq!(s.handle(&f.server, &frame).await, Outcome::Done);
    let frames = sent(&s);
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0]["event"], "message");
    assert_eq!(frames[0]["data"]["message"], "hi");
}

#[tokio::test]
async fn a_bad_frame_gets_bad_request() {
    let f = fixture();
    let mut s = session("lab", Role::Lab);
    assert_eq!(s.handle(&f.server, "{not json").await, Outcome::Done);
    let frames = sent(&s);
    assert_eq!(frames[0]["data"]["code"], "BAD_REQUEST", "{frames:?}");
}

#[tokio::test]
async fn refresh_says_the_expiry_changed_and_another_user_closes() {
    let f = fixture();
    let mut s = session("lab", Role::Lab);
    let before = s.principal.expires_at;
    let frame = json!({"event": "refreshToken", "data": {"token": token("lab", "LAB")}, "id": 1}).to_string();
    assert_eq!(s.handle(&f.server, &frame).await, Outcome::ExpiryChanged);
    assert!(s.principal.expires_at > before);
    assert_eq!(sent(&s)[0]["event"], "ack");
    // A token that expires earlier than the current one is refused; the current one holds.
    let (current, earlier) = (s.principal.expires_at, token_for("lab", "LAB", 60));
    let frame = json!({"event": "refreshToken", "data": {"token": earlier}, "id": 2}).to_string();
    assert_eq!(s.handle(&f.server, &frame).await, Outcome::Done);
    assert_eq!(s.principal.expires_at, current);
    let refused = &sent(&s)[0]["data"];
    assert_eq!((&refused["code"], &refused["retryable"]), (&json!("UNAUTHORIZED"), &json!(true)), "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("before the current one"), "{refused}");
    let other = json!({"event": "refreshToken", "data": {"token": token("other", "LAB")}}).to_string();
    assert_eq!(
        s.handle(&f.server, &other).await,
        Outcome::Close(End::Close(close::FORBIDDEN, "token for another user or role"))
    );
    assert_eq!(sent(&s)[0]["data"]["code"], "FORBIDDEN");
}

#[tokio::test]
async fn inbox_replies_even_without_id_and_subscribing_acks_with_an_empty_object() {
    let f = fixture();
    let rid = f.request(4, "t").to_hex();
    let mut s = session("t", Role::Teacher);
    let post = json!({"event": "message", "data": {"requestId": rid, "message": "hi"}}).to_string();
    assert_eq!(s.handle(&f.server, &post).await, Outcome::Done);
    let inbox = json!({"event": "inbox", "data": {"limit": 10}}).to_string();
    assert_eq!(s.handle(&f.server, &inbox).await, Outcome::Done);
    let frames = sent(&s);
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0]["event"], "ack");
    assert!(frames[0].get("id").is_none());
    assert_eq!(frames[0]["data"]["rooms"][0]["requestId"], rid);
    assert_eq!(frames[0]["data"]["rooms"][0]["unread"], 0, "own posts are not unread");
    assert_eq!(frames[0]["data"]["next"], Value::Null);
    for event in ["subscribeInbox", "unsubscribeInbox"] {
        let frame = json!({"event": event, "data": {}, "id": 3}).to_string();
        assert_eq!(s.handle(&f.server, &frame).await, Outcome::Done);
        assert_eq!(sent(&s), [json!({"event": "ack", "data": {}, "id": 3})], "{event}");
    }
}

/// A session of `user` whose sink (`sink`) drops what is hidden from that user, as a
/// connection's does.
fn user_session(user: &str, role: Role, sink: u64) -> Session {
    let principal = Principal {
        user: User::new(UserId::parse(user).unwrap(), role),
        expires_at: Timestamp::from_unix_millis(i64::MAX / 2),
    };
    Session::new(principal, Arc::new(ConnSink::new(SinkId(sink), 64, 1 << 20).for_user(UserId::parse(user).unwrap())))
}

#[tokio::test]
async fn typing_and_presence_reach_the_other_users_only_and_a_throttled_typing_is_still_acked() {
    let f = fixture();
    let rid = f.request(3, "t").to_hex();
    let (mut t, mut lab) = (user_session("t", Role::Teacher, 1), user_session("lab", Role::Lab, 2));
    let join = json!({"event": "joinRoom", "data": {"requestId": rid}, "id": 1}).to_string();
    assert_eq!(t.handle(&f.server, &join).await, Outcome::Done);
    assert_eq!(sent(&t)[0]["data"]["members"], json!([{"userId": "t", "role": "TEACHER"}]));
    assert_eq!(lab.handle(&f.server, &join).await, Outcome::Done);
    let mut members = sent(&lab)[0]["data"]["members"].as_array().unwrap().clone();
    members.sort_by_key(|m| m["userId"].as_str().unwrap().to_owned());
    assert_eq!(members, [json!({"userId": "lab", "role": "LAB"}), json!({"userId": "t", "role": "TEACHER"})]);
    assert_eq!(
        sent(&t),
        [json!({"event": "memberJoined", "data": {"requestId": rid, "userId": "lab", "role": "LAB"}})]
    );
    let typing = json!({"event": "typing", "data": {"requestId": rid}, "id": "k"}).to_string();
    assert_eq!(t.handle(&f.server, &typing).await, Outcome::Done);
    assert_eq!(sent(&t), [json!({"event": "ack", "data": {"requestId": rid}, "id": "k"})], "no typing of its own");
    assert_eq!(sent(&lab), [json!({"event": "typing", "data": {"requestId": rid, "userId": "t", "role": "TEACHER"}})]);
    // Within the interval: dropped, still acked, not counted; without an id: nothing at all.
    assert_eq!(t.handle(&f.server, &typing).await, Outcome::Uncounted);
    assert_eq!(sent(&t), [json!({"event": "ack", "data": {"requestId": rid}, "id": "k"})]);
    let no_id = json!({"event": "typing", "data": {"requestId": rid}}).to_string();
    assert_eq!(t.handle(&f.server, &no_id).await, Outcome::Uncounted);
    assert!(sent(&t).is_empty());
    assert!(sent(&lab).is_empty(), "a throttled typing is not broadcast");
    let leave = json!({"event": "leaveRoom", "data": {"requestId": rid}}).to_string();
    assert_eq!(lab.handle(&f.server, &leave).await, Outcome::Done);
    assert_eq!(sent(&t), [json!({"event": "memberLeft", "data": {"requestId": rid, "userId": "lab"}})]);
}

#[tokio::test]
async fn typing_in_a_foreign_room_is_forbidden() {
    let f = fixture();
    let rid = f.request(4, "t").to_hex();
    let mut other = user_session("t2", Role::Teacher, 3);
    let typing = json!({"event": "typing", "data": {"requestId": rid}, "id": 9}).to_string();
    assert_eq!(other.handle(&f.server, &typing).await, Outcome::Done);
    let frames = sent(&other);
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(
        (&frames[0]["event"], &frames[0]["data"]["code"], &frames[0]["id"]),
        (&json!("error"), &json!("FORBIDDEN"), &json!(9))
    );
}
