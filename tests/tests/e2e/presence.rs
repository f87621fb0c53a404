//! Presence (`members` in `roomHistory`, `memberJoined`, `memberLeft`) and typing over real
//! websockets with real JWTs, once on the in-memory store (`memory::*`) and once on MongoDB
//! (`mongodb::*`), on one node (several nodes: `tests/multinode/presence.rs`).
//!
//! On one node a broadcast is queued for every member before the publishing call answers, so a
//! frame that is not delivered is proved absent by a later call of the same connection whose
//! reply comes with nothing before it ([`nothing_pending`]).
//!
//! The MongoDB tests need `LABCHAT_TEST_MONGO_URI`; run them with
//! `scripts/test.sh -p labchat-tests --test e2e -- presence::`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use labchat_tests::client::Client;
use labchat_tests::harness::{self, TestServer, token};
use serde_json::{Value, json};
use tokio::time::Instant;

labchat_tests::on_every_store! {
    room_history_lists_the_members_of_every_tab_once,
    member_joined_is_sent_once_for_two_tabs_and_never_to_the_user_s_own,
    member_left_comes_after_the_last_tab_leaves_or_closes,
    typing_reaches_the_other_users_and_no_tab_of_the_sender,
    a_second_typing_within_two_seconds_is_acked_but_not_broadcast,
    typing_in_a_foreign_room_is_forbidden_and_a_foreign_room_s_presence_is_never_seen,
}

async fn connect(server: &TestServer, user: &str, role: &str) -> Client {
    Client::connect(&server.url(), &token(user, role)).await.seeing_presence()
}

/// The members of a `roomHistory`, sorted by user id.
fn members(history: &Value) -> Vec<(String, String)> {
    let mut m: Vec<(String, String)> = history["members"]
        .as_array()
        .unwrap_or_else(|| panic!("roomHistory of joinRoom carries members: {history}"))
        .iter()
        .map(|m| (m["userId"].as_str().unwrap().to_owned(), m["role"].as_str().unwrap().to_owned()))
        .collect();
    m.sort();
    m
}

fn member(user: &str, role: &str) -> (String, String) {
    (user.to_owned(), role.to_owned())
}

/// Asserts that nothing was queued for `c`: a `history` call's reply comes with no frame
/// before it.
async fn nothing_pending(c: &mut Client, room: &str, who: &str) {
    let frames = c.call("history", json!({"requestId": room})).await;
    let events: Vec<&Value> = frames.iter().map(|f| &f["event"]).collect();
    assert_eq!(events, [&json!("roomHistory"), &json!("ack")], "{who} received {frames:?}");
}

/// Waits until the server counts `n` room subscriptions in all (a closed connection's are gone
/// only once the server has seen the close).
async fn until_subscriptions(server: &TestServer, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.broadcaster.subscription_count() != n {
        assert!(Instant::now() < deadline, "subscriptions: {} not {n}", server.broadcaster.subscription_count());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn room_history_lists_the_members_of_every_tab_once(server: TestServer) {
    let rid = server.add_request("t1").await.to_hex();
    let mut t = connect(&server, "t1", "TEACHER").await;
    assert_eq!(members(&t.join(&rid).await), [member("t1", "TEACHER")], "the joining user is a member");
    let mut lab_a = connect(&server, "lab-1", "LAB").await;
    let mut lab_b = connect(&server, "lab-1", "LAB").await;
    let mut lab2 = connect(&server, "lab-2", "LAB").await;
    lab_a.join(&rid).await;
    lab_b.join(&rid).await;
    let all = members(&lab2.join(&rid).await);
    assert_eq!(all, [member("lab-1", "LAB"), member("lab-2", "LAB"), member("t1", "TEACHER")], "each user once");
    // `history` is not a join: no members.
    let frames = t.call("history", json!({"requestId": rid})).await;
    let page = frames.iter().find(|f| f["event"] == "roomHistory").unwrap();
    assert!(page["data"].get("members").is_none(), "{page}");
    // A user who left is no member any more.
    lab2.ok("leaveRoom", json!({"requestId": rid})).await;
    let mut t_again = connect(&server, "t1", "TEACHER").await;
    assert_eq!(members(&t_again.join(&rid).await), [member("lab-1", "LAB"), member("t1", "TEACHER")]);
}

async fn member_joined_is_sent_once_for_two_tabs_and_never_to_the_user_s_own(server: TestServer) {
    let rid = server.add_request("t1").await.to_hex();
    let mut t = connect(&server, "t1", "TEACHER").await;
    t.join(&rid).await;
    let mut lab_a = connect(&server, "lab-1", "LAB").await;
    lab_a.join(&rid).await;
    assert_eq!(t.expect("memberJoined").await, json!({"requestId": rid, "userId": "lab-1", "role": "LAB"}));
    let mut lab_b = connect(&server, "lab-1", "LAB").await;
    lab_b.join(&rid).await;
    nothing_pending(&mut t, &rid, "t1 after lab-1's second tab").await;
    nothing_pending(&mut lab_a, &rid, "lab-1's first tab").await;
    // A second join of the same connection announces nothing either.
    lab_b.join(&rid).await;
    nothing_pending(&mut t, &rid, "t1 after a rejoin").await;
}

async fn member_left_comes_after_the_last_tab_leaves_or_closes(server: TestServer) {
    let rid = server.add_request("t1").await.to_hex();
    let mut t = connect(&server, "t1", "TEACHER").await;
    t.join(&rid).await;
    let mut lab_a = connect(&server, "lab-1", "LAB").await;
    let mut lab_b = connect(&server, "lab-1", "LAB").await;
    lab_a.join(&rid).await;
    lab_b.join(&rid).await;
    assert_eq!(t.expect("memberJoined").await["userId"], "lab-1");
    // One tab leaves: still present.
    lab_a.ok("leaveRoom", json!({"requestId": rid})).await;
    nothing_pending(&mut t, &rid, "t1 after one tab left").await;
    nothing_pending(&mut lab_b, &rid, "lab-1's other tab").await;
    // The last one closes: gone.
    lab_b.ws.close(None).await.unwrap();
    assert_eq!(t.expect("memberLeft").await, json!({"requestId": rid, "userId": "lab-1"}));
    until_subscriptions(&server, 1).await;
    nothing_pending(&mut t, &rid, "t1 after memberLeft").await;
    // leaveRoom of the last tab: gone too. Closing a tab that had left says nothing more.
    lab_a.join(&rid).await;
    assert_eq!(t.expect("memberJoined").await["userId"], "lab-1");
    lab_a.ok("leaveRoom", json!({"requestId": rid})).await;
    assert_eq!(t.expect("memberLeft").await, json!({"requestId": rid, "userId": "lab-1"}));
    lab_a.ws.close(None).await.unwrap();
    drop(lab_a);
    let mut lab_c = connect(&server, "lab-9", "LAB").await;
    lab_c.join(&rid).await;
    assert_eq!(t.expect("memberJoined").await["userId"], "lab-9", "no second memberLeft for lab-1");
}

async fn typing_reaches_the_other_users_and_no_tab_of_the_sender(server: TestServer) {
    let rid = server.add_request("t1").await.to_hex();
    let mut t_a = connect(&server, "t1", "TEACHER").await;
    let mut t_b = connect(&server, "t1", "TEACHER").await;
    let mut lab = connect(&server, "lab-1", "LAB").await;
    t_a.join(&rid).await;
    t_b.join(&rid).await;
    lab.join(&rid).await;
    assert_eq!(t_a.expect("memberJoined").await["userId"], "lab-1");
    assert_eq!(t_b.expect("memberJoined").await["userId"], "lab-1");
    let frames = t_a.call("typing", json!({"requestId": rid})).await;
    assert_eq!(frames.len(), 1, "only the ack: {frames:?}");
    assert_eq!((&frames[0]["event"], &frames[0]["data"]), (&json!("ack"), &json!({"requestId": rid})));
    assert_eq!(lab.expect("typing").await, json!({"requestId": rid, "userId": "t1", "role": "TEACHER"}));
    nothing_pending(&mut t_b, &rid, "the sender's other tab").await;
    // A user may type in a room they did not join (they may act on it).
    let mut lab2 = connect(&server, "lab-2", "LAB").await;
    lab2.emit("typing", json!({"requestId": rid})).await;
    assert_eq!(lab.expect("typing").await, json!({"requestId": rid, "userId": "lab-2", "role": "LAB"}));
    assert_eq!(t_a.expect("typing").await["userId"], "lab-2");
    // Without an id: no reply at all.
    nothing_pending(&mut lab2, &rid, "a typing without an id").await;
}

async fn a_second_typing_within_two_seconds_is_acked_but_not_broadcast(server: TestServer) {
    let rid = server.add_request("t1").await.to_hex();
    let mut t = connect(&server, "t1", "TEACHER").await;
    let mut lab = connect(&server, "lab-1", "LAB").await;
    lab.join(&rid).await;
    let first = Instant::now();
    t.ok("typing", json!({"requestId": rid})).await;
    assert_eq!(lab.expect("typing").await["userId"], "t1");
    assert_eq!(t.ok("typing", json!({"requestId": rid})).await, json!({"requestId": rid}), "acked");
    t.emit("typing", json!({"requestId": rid})).await;
    // From another connection of the same user: the same throttle.
    let mut t2 = connect(&server, "t1", "TEACHER").await;
    t2.ok("typing", json!({"requestId": rid})).await;
    assert!(first.elapsed() < Duration::from_secs(2), "the machine is too slow for this test");
    nothing_pending(&mut lab, &rid, "lab-1 within the interval").await;
    // Another user is throttled on their own.
    let mut lab2 = connect(&server, "lab-2", "LAB").await;
    lab2.ok("typing", json!({"requestId": rid})).await;
    assert_eq!(lab.expect("typing").await["userId"], "lab-2");
    // After the interval, broadcast again.
    tokio::time::sleep_until(first + Duration::from_millis(2100)).await;
    t.ok("typing", json!({"requestId": rid})).await;
    assert_eq!(lab.expect("typing").await["userId"], "t1");
}

async fn typing_in_a_foreign_room_is_forbidden_and_a_foreign_room_s_presence_is_never_seen(server: TestServer) {
    let mine = server.add_request("t1").await.to_hex();
    let theirs = server.add_request("t2").await.to_hex();
    let mut t1 = connect(&server, "t1", "TEACHER").await;
    let mut t2 = connect(&server, "t2", "TEACHER").await;
    t2.join(&theirs).await;
    t1.join(&mine).await;
    let err = t2.err("typing", json!({"requestId": mine})).await;
    assert_eq!((&err["code"], &err["event"], &err["requestId"]), (&json!("FORBIDDEN"), &json!("typing"), &json!(mine)));
    let missing = harness::new_request_id().to_hex();
    assert_eq!(t2.err("typing", json!({"requestId": missing})).await["code"], "FORBIDDEN");
    // Everything that happens in t1's room: a member joins, types, leaves.
    let mut lab = connect(&server, "lab-1", "LAB").await;
    lab.join(&mine).await;
    lab.ok("typing", json!({"requestId": mine})).await;
    lab.ok("leaveRoom", json!({"requestId": mine})).await;
    assert_eq!(t1.expect("memberJoined").await["userId"], "lab-1");
    assert_eq!(t1.expect("typing").await["userId"], "lab-1");
    assert_eq!(t1.expect("memberLeft").await["userId"], "lab-1");
    t1.ok("typing", json!({"requestId": mine})).await;
    nothing_pending(&mut t2, &theirs, "the other teacher").await;
}

/// A server with these rate limits, a room of `t1`, its creator `t` (who will type) and `lab`
/// (joined, listening).
async fn typist_and_listener(rate: f64, burst: f64, close_after: Duration) -> (TestServer, String, Client, Client) {
    let mut settings = harness::settings();
    settings.ws.rate_per_second = rate;
    settings.ws.rate_burst = burst;
    settings.ws.rate_close_after = close_after;
    let server = TestServer::start_with(settings).await;
    let rid = server.add_request("t1").await.to_hex();
    let t = connect(&server, "t1", "TEACHER").await;
    let mut lab = connect(&server, "lab-1", "LAB").await;
    lab.join(&rid).await;
    (server, rid, t, lab)
}

/// Throttled typing frames are handled frames: answered, never `RATE_LIMITED`, and a client
/// typing below the rate limit for longer than its closing delay stays connected.
#[tokio::test]
async fn throttled_typing_never_counts_against_the_rate_limit() {
    let (server, rid, mut t, mut lab) = typist_and_listener(10.0, 5.0, Duration::from_millis(500)).await;
    let started = Instant::now();
    let mut acks = 0;
    while started.elapsed() < Duration::from_millis(1500) {
        let frames = t.call("typing", json!({"requestId": rid})).await;
        assert_eq!(frames.len(), 1, "{frames:?}");
        assert_eq!(frames[0]["event"], "ack", "{frames:?}");
        acks += 1;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert!(acks >= 8, "{acks} typing frames");
    assert_eq!(lab.expect("typing").await["userId"], "t1");
    nothing_pending(&mut lab, &rid, "lab-1: one typing in 1.5 s").await;
    nothing_pending(&mut t, &rid, "the typist, still connected").await;
    server.stop().await;
}

/// A fast typist, far above the frame rate limit (one `typing` per key, 33 a second, with a
/// limit of 5 frames a second): every one is throttled but the first and none counts against
/// the limit: each is acked (none `RATE_LIMITED`), the connection stays open past the closing
/// delay, and a message sent right after is admitted.
#[tokio::test]
async fn a_fast_typist_is_never_rate_limited() {
    let (server, rid, mut t, mut lab) = typist_and_listener(5.0, 5.0, Duration::from_millis(300)).await;
    let started = Instant::now();
    let mut acks = 0;
    while started.elapsed() < Duration::from_millis(1000) {
        let frames = t.call("typing", json!({"requestId": rid})).await;
        assert_eq!(frames.len(), 1, "{frames:?}");
        assert_eq!(frames[0]["event"], "ack", "frame {acks}: {frames:?}");
        acks += 1;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert!(acks >= 20, "only {acks} typing frames in 1 s");
    t.ok("message", json!({"requestId": rid, "message": "after the typing"})).await;
    assert_eq!(lab.expect("typing").await["userId"], "t1");
    assert_eq!(lab.expect("message").await["message"], "after the typing");
    nothing_pending(&mut lab, &rid, "lab-1: one typing").await;
    server.stop().await;
}

/// A flood of `typing` frames that never waits is bounded like any flood: past the typing
/// bucket each is refused with `RATE_LIMITED` naming the frame, and a flood that goes on is
/// closed with 1008. The room hears one `typing`.
#[tokio::test]
async fn a_flood_of_typing_is_refused_then_closed() {
    let mut settings = harness::settings();
    settings.ws.typing_rate_per_second = 20.0;
    settings.ws.typing_burst = 10.0;
    settings.ws.rate_close_after = Duration::from_millis(300);
    let server = TestServer::start_with(settings).await;
    let rid = server.add_request("t1").await.to_hex();
    let mut t = connect(&server, "t1", "TEACHER").await;
    let mut lab = connect(&server, "lab-1", "LAB").await;
    lab.join(&rid).await;
    let mut limited = None;
    for _ in 0..200 {
        let frames = t.call("typing", json!({"requestId": rid})).await;
        let last = frames.last().unwrap();
        if last["event"] == "error" {
            limited = Some(last.clone());
            break;
        }
    }
    let limited = limited.expect("a flood of typing is refused");
    assert_eq!(limited["data"]["code"], "RATE_LIMITED", "{limited}");
    assert_eq!(limited["data"]["event"], "typing", "{limited}");
    assert!(limited["data"]["retryAfterMs"].as_u64().is_some_and(|ms| ms > 0), "{limited}");
    // The flood goes on, past the closing delay, without waiting: closed.
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(600) {
        t.send(json!({"event": "typing", "data": {"requestId": rid}, "id": 1})).await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(t.expect_close().await, 1008);
    assert_eq!(lab.expect("typing").await["userId"], "t1");
    nothing_pending(&mut lab, &rid, "lab-1: one typing").await;
    server.stop().await;
}
