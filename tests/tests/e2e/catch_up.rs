//! `joinRoom {after}` catches up what changed while a client was away on the messages it already
//! holds, over real websockets with real JWTs, on both stores: receipts, edits and deletions are
//! replayed right after the `roomHistory`, so a client that was away ends with the same room as
//! one that stayed, and as a fresh join serves it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use labchat_tests::client::Client;
use labchat_tests::harness::{TestServer, settings, token};
use serde_json::{Value, json};

const QUIET: Duration = Duration::from_millis(300);

labchat_tests::on_every_store! {
    a_read_made_while_the_sender_was_away_is_replayed_on_rejoin,
    a_client_that_was_away_sees_the_same_room_as_one_that_stayed,
    a_join_without_after_or_with_nothing_changed_replays_nothing,
    a_replay_too_large_for_the_reply_keeps_the_newest_and_says_where_it_starts,
}

/// A room as a client sees it: each message's text (or tombstone) and receipts, by id.
#[derive(Default, Debug, PartialEq)]
struct View(BTreeMap<String, Value>);

impl View {
    /// Applies one server frame, as a client would.
    fn apply(&mut self, frame: &Value) {
        let data = &frame["data"];
        let ids = || data["messages"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned());
        match frame["event"].as_str().unwrap() {
            "roomHistory" => data["messages"].as_array().unwrap().iter().for_each(|m| self.put(m)),
            "message" | "ack" if data.get("seq").is_some() => self.put(data),
            "messageEdited" => {
                let m = self.0.get_mut(data["messageId"].as_str().unwrap()).expect("an edit of a held message");
                m["message"] = data["message"].clone();
                m["editedAt"] = data["editedAt"].clone();
            }
            "messageDeleted" => {
                let m = self.0.get_mut(data["messageId"].as_str().unwrap()).expect("a deletion of a held message");
                m["message"] = Value::Null;
                m["editedAt"] = Value::Null;
                m["deletedAt"] = data["deletedAt"].clone();
                m["deletedBy"] = data["deletedBy"].clone();
            }
            kind @ ("messagesDelivered" | "messageReads") => {
                let list = if kind == "messagesDelivered" { "deliveredTo" } else { "readBy" };
                for id in ids() {
                    let m = self.0.get_mut(&id).expect("a receipt of a held message");
                    m[list][data["userId"].as_str().unwrap()] = data["at"].clone();
                }
            }
            _ => {}
        }
    }

    /// A Message object as held: text, marks and receipts by user.
    fn put(&mut self, m: &Value) {
        let by_user = |list: &Value| -> Value {
            let pairs = list.as_array().map(Vec::as_slice).unwrap_or_default();
            Value::Object(pairs.iter().map(|r| (r["userId"].as_str().unwrap().to_owned(), r["at"].clone())).collect())
        };
        let held = json!({
            "message": m["message"], "editedAt": m["editedAt"], "deletedAt": m["deletedAt"],
            "deletedBy": m["deletedBy"], "deliveredTo": by_user(&m["deliveredTo"]), "readBy": by_user(&m["readBy"]),
        });
        self.0.insert(m["id"].as_str().unwrap().to_owned(), held);
    }

    /// Applies every frame that arrives until the connection is quiet.
    async fn drain(&mut self, c: &mut Client) {
        while let Some(f) = c.try_recv(QUIET).await {
            self.apply(&f);
        }
    }
}

/// The room as a fresh join serves it.
async fn served(server: &TestServer, rid: &str) -> View {
    let mut c = Client::connect(&server.url(), &token("lab-auditor", "LAB")).await;
    let mut view = View::default();
    view.apply(&json!({"event": "roomHistory", "data": c.join(rid).await}));
    view
}

async fn a_read_made_while_the_sender_was_away_is_replayed_on_rejoin(server: TestServer) {
    let rid = server.add_request("t1").await.to_hex();
    let mut t = Client::connect(&server.url(), &token("t1", "TEACHER")).await;
    t.join(&rid).await;
    let sent = t.post(&rid, "is the sample ready?").await;
    drop(t);
    let mut l = Client::connect(&server.url(), &token("lab-1", "LAB")).await;
    l.join(&rid).await;
    l.ok("readMessages", json!({"requestId": rid, "messages": [sent["id"]]})).await;

    let mut t = Client::connect(&server.url(), &token("t1", "TEACHER")).await;
    let frames = t.call("joinRoom", json!({"requestId": rid, "after": sent["id"]})).await;
    let events: Vec<&str> = frames.iter().map(|f| f["event"].as_str().unwrap()).collect();
    // The replay first (it concerns messages the client holds), then the page.
    assert_eq!(events, ["messagesDelivered", "messageReads", "roomHistory", "ack"], "{frames:?}");
    let history = &frames[2]["data"];
    assert_eq!(
        (&history["messages"], &history["hasMore"], &history["changesCut"], &history["unread"]),
        (&json!([]), &json!(false), &json!(false), &json!(0))
    );
    assert!(history.get("changesFrom").is_none(), "{history}");
    for f in &frames[0..2] {
        assert_eq!(f["data"]["requestId"], rid);
        assert_eq!(f["data"]["userId"], "lab-1");
        assert_eq!(f["data"]["messages"], json!([sent["id"]]));
    }
    // The times are those the room holds.
    let truth = served(&server, &rid).await;
    let held = &truth.0[sent["id"].as_str().unwrap()];
    assert_eq!(frames[0]["data"]["at"], held["deliveredTo"]["lab-1"]);
    assert_eq!(frames[1]["data"]["at"], held["readBy"]["lab-1"]);
    t.expect_silence(QUIET).await;
}

async fn a_client_that_was_away_sees_the_same_room_as_one_that_stayed(server: TestServer) {
    let rid = server.add_request("t1").await.to_hex();
    let mut t = Client::connect(&server.url(), &token("t1", "TEACHER")).await;
    let mut lab = Client::connect(&server.url(), &token("lab-1", "LAB")).await;
    let (mut stayer, mut stayed) = (Client::connect(&server.url(), &token("lab-2", "LAB")).await, View::default());
    let (mut leaver, mut away) = (Client::connect(&server.url(), &token("lab-3", "LAB")).await, View::default());
    t.join(&rid).await;
    lab.join(&rid).await;
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(t.post(&rid, &format!("m{i}")).await["id"].clone());
    }
    // Both watchers hold the six messages, and m0 read by lab-1 (seen live by both).
    lab.ok("readMessages", json!({"requestId": rid, "messages": [ids[0]]})).await;
    for (c, v) in [(&mut stayer, &mut stayed), (&mut leaver, &mut away)] {
        v.apply(&json!({"event": "roomHistory", "data": c.join(&rid).await}));
    }
    away.drain(&mut leaver).await;
    stayed.drain(&mut stayer).await;
    assert_eq!(away, stayed, "before leaving");
    let last = ids[5].clone();
    drop(leaver);

    // While away: receipts of several users, an edit, deletions by the sender and by a moderator.
    lab.ok("ackMessages", json!({"requestId": rid, "messages": [ids[1], ids[2]]})).await;
    lab.ok("readMessages", json!({"requestId": rid, "messages": [ids[1], ids[3], ids[5]]})).await;
    t.ok("editMessage", json!({"requestId": rid, "messageId": ids[2], "message": "m2, fixed"})).await;
    t.ok("editMessage", json!({"requestId": rid, "messageId": ids[4], "message": "m4, fixed"})).await;
    t.ok("deleteMessage", json!({"requestId": rid, "messageId": ids[4]})).await;
    lab.ok("deleteMessage", json!({"requestId": rid, "messageId": ids[3]})).await;
    let mut auditor = Client::connect(&server.url(), &token("lab-9", "LAB")).await;
    auditor.join(&rid).await;
    auditor.ok("readMessages", json!({"requestId": rid, "messages": [ids[0], ids[1], ids[2]]})).await;
    stayed.drain(&mut stayer).await;

    let mut back = Client::connect(&server.url(), &token("lab-3", "LAB")).await;
    let frames = back.call("joinRoom", json!({"requestId": rid, "after": last})).await;
    let n = frames.len();
    assert!(n > 2, "{frames:?}");
    assert_eq!(
        (&frames[n - 2]["event"], &frames[n - 1]["event"]),
        (&json!("roomHistory"), &json!("ack")),
        "{frames:?}"
    );
    assert_eq!(frames[n - 2]["data"]["changesCut"], false);
    assert_eq!(frames[n - 2]["data"]["messages"], json!([]));
    for f in &frames {
        away.apply(f);
    }
    assert_eq!(away, stayed, "the client that was away, against the one that stayed");
    assert_eq!(away, served(&server, &rid).await, "against a fresh join");
    let replayed = format!("{frames:?}");
    assert!(!replayed.contains("m4") && !replayed.contains("m3"), "a deleted text is never replayed: {replayed}");
}

async fn a_join_without_after_or_with_nothing_changed_replays_nothing(server: TestServer) {
    let rid = server.add_request("t1").await.to_hex();
    let mut t = Client::connect(&server.url(), &token("t1", "TEACHER")).await;
    t.join(&rid).await;
    let first = t.post(&rid, "first").await;
    let later = t.post(&rid, "later").await;
    // Nothing changed on the held messages: the page alone, which says so.
    let mut back = Client::connect(&server.url(), &token("t1", "TEACHER")).await;
    let frames = back.call("joinRoom", json!({"requestId": rid, "after": later["id"]})).await;
    let events: Vec<&str> = frames.iter().map(|f| f["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["roomHistory", "ack"], "{frames:?}");
    assert_eq!((&frames[0]["data"]["messages"], &frames[0]["data"]["changesCut"]), (&json!([]), &json!(false)));
    // A receipt: replayed to a join after it; a join without `after` has it in its page and no
    // `changesCut`.
    let mut lab = Client::connect(&server.url(), &token("lab-1", "LAB")).await;
    lab.ok("ackMessages", json!({"requestId": rid, "messages": [first["id"]]})).await;
    let mut again = Client::connect(&server.url(), &token("t1", "TEACHER")).await;
    let frames = again.call("joinRoom", json!({"requestId": rid, "after": later["id"]})).await;
    let events: Vec<&str> = frames.iter().map(|f| f["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["messagesDelivered", "roomHistory", "ack"], "{frames:?}");
    let mut fresh = Client::connect(&server.url(), &token("t1", "TEACHER")).await;
    let frames = fresh.call("joinRoom", json!({"requestId": rid})).await;
    let events: Vec<&str> = frames.iter().map(|f| f["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["roomHistory", "ack"], "{frames:?}");
    assert!(frames[0]["data"].get("changesCut").is_none(), "{frames:?}");
    assert_eq!(frames[0]["data"]["messages"][0]["deliveredTo"][0]["userId"], "lab-1");
}

/// Keeps one client under the default rate limit (30 frames a second, bursts of 60).
async fn pace(i: usize) {
    if i % 20 == 19 {
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
}

/// A replay larger than the reply's bytes keeps the changes of the highest seqs and says from
/// which seq on it is whole (`changesFrom`); every frame of the reply stays within its budget.
async fn a_replay_too_large_for_the_reply_keeps_the_newest_and_says_where_it_starts(server: TestServer) {
    const POSTED: usize = 40;
    let rid = server.add_request("t1").await.to_hex();
    let mut lab = Client::connect(&server.url(), &token("lab-poster", "LAB")).await;
    let (big, bigger) = ("\u{1}".repeat(4000), "\u{2}".repeat(4000));
    let mut posted = Vec::new();
    for i in 0..POSTED {
        posted.push(lab.post(&rid, &big).await);
        pace(i).await;
    }
    let last = posted.last().unwrap()["id"].clone();
    // While the teacher is away, every message is edited: 40 edits of 24 kB each on the wire.
    for (i, m) in posted.iter().enumerate() {
        lab.ok("editMessage", json!({"requestId": rid, "messageId": m["id"], "message": bigger})).await;
        pace(i).await;
    }
    let mut back = Client::connect(&server.url(), &token("t1", "TEACHER")).await;
    let frames = back.call("joinRoom", json!({"requestId": rid, "after": last})).await;
    let budget = labchat_transport_ws::WsConfig::default().reply_budget();
    let bytes: usize = frames.iter().map(|f| f.to_string().len()).sum();
    assert!(bytes <= budget, "the reply's frames hold {bytes} bytes, past the budget of {budget}");
    let n = frames.len();
    let history = &frames[n - 2]["data"];
    assert_eq!((&frames[n - 2]["event"], &history["changesCut"]), (&json!("roomHistory"), &json!(true)));
    let from = history["changesFrom"].as_u64().expect("changesFrom");
    let edited: Vec<u64> = frames[..n - 2]
        .iter()
        .map(|f| {
            assert_eq!(f["event"], "messageEdited", "{f}");
            f["data"]["seq"].as_u64().unwrap()
        })
        .collect();
    // The newest kept, every one of them from `changesFrom` on, in order.
    let want: Vec<u64> = (from..=POSTED as u64).collect();
    assert_eq!(edited, want);
    assert!(from > 1 && edited.len() >= 2, "{from}, {edited:?}");
}

/// Receipts marked one message at a time make a replay of many small frames: it is cut to what
/// one reply may queue (half the outbound queue's frames), keeping the highest seqs, and the
/// joining connection stays open, where the whole replay would overflow its queue (1013).
#[tokio::test]
async fn a_replay_of_more_frames_than_a_reply_may_queue_is_cut_and_the_connection_stays_open() {
    const POSTED: usize = 40;
    let mut s = settings();
    s.ws.outbound_max_frames = 64;
    (s.ws.rate_per_second, s.ws.rate_burst) = (100_000.0, 100_000.0);
    let max_frames = s.ws.reply_frames();
    let server = TestServer::start_with(s).await;
    let rid = server.add_request("t1").await.to_hex();
    let mut t = Client::connect(&server.url(), &token("t1", "TEACHER")).await;
    let mut posted = Vec::new();
    for i in 0..POSTED {
        posted.push(t.post(&rid, &format!("sample {i}")).await);
    }
    drop(t);
    // While the teacher is away, a LAB user reads each message alone: two receipts each.
    let mut lab = Client::connect(&server.url(), &token("lab-1", "LAB")).await;
    lab.join(&rid).await;
    for m in &posted {
        lab.ok("readMessages", json!({"requestId": rid, "messages": [m["id"]]})).await;
        // Receipts of one instant (to the millisecond) are replayed together: one instant each.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let mut back = Client::connect(&server.url(), &token("t1", "TEACHER")).await;
    let last = posted.last().unwrap()["id"].clone();
    let frames = back.call("joinRoom", json!({"requestId": rid, "after": last})).await;
    let n = frames.len();
    assert!(n <= max_frames, "the reply queued {n} frames, past the {max_frames} a reply may");
    assert_eq!((&frames[n - 2]["event"], &frames[n - 1]["event"]), (&json!("roomHistory"), &json!("ack")));
    let history = &frames[n - 2]["data"];
    assert_eq!(history["changesCut"], true, "{history}");
    let from = history["changesFrom"].as_u64().expect("changesFrom");
    // The receipts kept are those of every message from `changesFrom` on, delivered then read.
    let seq_of = |id: &Value| posted.iter().position(|m| &m["id"] == id).map(|i| i as u64 + 1);
    let replayed: Vec<(String, u64)> = frames[..n - 2]
        .iter()
        .map(|f| {
            let ids = f["data"]["messages"].as_array().unwrap();
            assert_eq!(ids.len(), 1, "{f}");
            (f["event"].as_str().unwrap().to_owned(), seq_of(&ids[0]).unwrap())
        })
        .collect();
    let want: Vec<(String, u64)> = (from..=POSTED as u64)
        .flat_map(|seq| [("messagesDelivered".to_owned(), seq), ("messageReads".to_owned(), seq)])
        .collect();
    assert_eq!(replayed, want);
    assert!(from > 1 && replayed.len() >= 2, "{from}, {replayed:?}");
    // Still open: the connection answers the next call.
    back.post(&rid, "and the rest?").await;
}
