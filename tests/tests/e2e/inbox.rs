//! The inbox over real websockets with real JWTs, on both stores: pages with unread counts, the
//! unread fields of a join, cursor paging and its errors, live `inboxUpdate`s (a read on another
//! device included, and no update identical to the last one), and two teachers who never see each
//! other's rooms.
//!
//! The MongoDB tests need `LABCHAT_TEST_MONGO_URI`; run them with `scripts/test.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use ::mongodb::bson::{Document, doc, oid::ObjectId};
use labchat_domain::{Request, RequestId, UserId};
use labchat_tests::client::Client;
use labchat_tests::contract::Creator;
use labchat_tests::harness::{TestServer, token};
use serde_json::{Value, json};

const QUIET: Duration = Duration::from_millis(300);

labchat_tests::on_every_store! {
    the_inbox_lists_rooms_with_unread_counts_and_a_join_tells_the_first_unread,
    the_inbox_pages_with_its_cursor_and_refuses_bad_limits_and_cursors,
    two_teachers_never_see_each_other_s_rooms,
    live_updates_follow_posts_and_reads_on_every_device,
    a_burst_of_posts_sends_no_update_identical_to_the_last_one,
    a_reassigned_request_leaves_the_old_teacher_s_inbox_and_updates_at_once,
}

async fn connect(server: &TestServer, id: &str, role: &str) -> Client {
    Client::connect(&server.url(), &token(id, role)).await
}

/// Posts and makes sure the next post gets a later time (rooms are ordered by time).
async fn post(c: &mut Client, rid: &str, text: &str) -> Value {
    let m = c.post(rid, text).await;
    tokio::time::sleep(Duration::from_millis(3)).await;
    m
}

async fn inbox(c: &mut Client, data: Value) -> Value {
    c.ok("inbox", data).await
}

fn rooms(page: &Value) -> Vec<String> {
    page["rooms"].as_array().unwrap().iter().map(|r| r["requestId"].as_str().unwrap().to_owned()).collect()
}

fn unread(page: &Value) -> Vec<u64> {
    page["rooms"].as_array().unwrap().iter().map(|r| r["unread"].as_u64().unwrap()).collect()
}

async fn the_inbox_lists_rooms_with_unread_counts_and_a_join_tells_the_first_unread(server: TestServer) {
    let (r1, r2) = (server.add_request("t1").await.to_hex(), server.add_request("t1").await.to_hex());
    let empty = server.add_request("t1").await.to_hex();
    let mut t = connect(&server, "t1", "TEACHER").await;
    let mut l = connect(&server, "lab-1", "LAB").await;
    assert_eq!(inbox(&mut t, json!({})).await, json!({"rooms": [], "next": null}), "nothing posted yet");

    let first = post(&mut l, &r1, "one").await;
    post(&mut l, &r1, "two").await;
    post(&mut t, &r1, "mine").await;
    let last_r2 = post(&mut l, &r2, "elsewhere").await;
    let page = inbox(&mut t, json!({})).await;
    assert_eq!(rooms(&page), [r2.clone(), r1.clone()], "latest activity first; the room without messages is absent");
    assert_eq!(unread(&page), [1, 2], "own posts are never unread");
    assert_eq!(page["next"], Value::Null);
    let row = &page["rooms"][0];
    assert_eq!(row["lastMessage"], last_r2, "the last message, as stored");
    assert_eq!(row["lastActivityAt"], last_r2["createdAt"]);
    assert!(!rooms(&page).contains(&empty));

    // The lab user's own view: the teacher's post is its only unread message of r1.
    let page = inbox(&mut l, json!({})).await;
    assert_eq!((rooms(&page), unread(&page)), (vec![r2.clone(), r1.clone()], vec![0, 1]));

    // Joining tells the unread count and the oldest unread message; `history` does not.
    let history = t.join(&r1).await;
    assert_eq!((history["unread"].clone(), history["firstUnreadId"].clone()), (json!(2), first["id"].clone()));
    let plain = t.call("history", json!({"requestId": r1})).await;
    assert!(plain[0]["data"].get("unread").is_none() && plain[0]["data"].get("firstUnreadId").is_none());

    // Reading the first one lowers the count, and the first unread moves on.
    let read = t.ok("readMessages", json!({"requestId": r1, "messages": [first["id"]]})).await;
    assert_eq!(read["messages"], json!([first["id"]]));
    let history = t.join(&r1).await;
    assert_eq!(history["unread"], 1);
    assert_ne!(history["firstUnreadId"], first["id"]);
    let all: Vec<Value> = history["messages"].as_array().unwrap().iter().map(|m| m["id"].clone()).collect();
    assert_eq!(history["firstUnreadId"], all[1], "the second message is now the oldest unread");
    let ids: Vec<Value> = all.clone();
    t.ok("readMessages", json!({"requestId": r1, "messages": ids})).await;
    let history = t.join(&r1).await;
    assert_eq!((history["unread"].clone(), history["firstUnreadId"].clone()), (json!(0), Value::Null));
    let page = inbox(&mut t, json!({})).await;
    assert_eq!(unread(&page), [1, 0], "reading lowers only that room's count");
    // A room with no message: nothing unread.
    let history = t.join(&empty).await;
    assert_eq!((history["unread"].clone(), history["firstUnreadId"].clone()), (json!(0), Value::Null));
}

async fn the_inbox_pages_with_its_cursor_and_refuses_bad_limits_and_cursors(server: TestServer) {
    let mut l = connect(&server, "lab-1", "LAB").await;
    let mut made = Vec::new();
    for i in 0..5 {
        let rid = server.add_request("t1").await.to_hex();
        post(&mut l, &rid, &format!("m{i}")).await;
        made.push(rid);
    }
    made.reverse();
    let mut seen = Vec::new();
    let mut before = Value::Null;
    let mut sizes = Vec::new();
    loop {
        let page = inbox(&mut l, json!({"limit": 2, "before": before})).await;
        sizes.push(page["rooms"].as_array().unwrap().len());
        seen.extend(rooms(&page));
        if page["next"].is_null() {
            break;
        }
        assert!(page["next"].is_string(), "{page}");
        before = page["next"].clone();
    }
    assert_eq!(sizes, [2, 2, 1]);
    assert_eq!(seen, made, "every room once, latest first");
    assert_eq!(rooms(&inbox(&mut l, json!({"limit": 100})).await), made);

    // Without an id the reply still comes, as an ack without id.
    l.emit("inbox", json!({"limit": 1})).await;
    let reply = l.recv().await;
    assert_eq!(reply["event"], "ack");
    assert!(reply.get("id").is_none(), "{reply}");
    assert_eq!(rooms(&reply["data"]), made[..1]);

    for limit in [json!(0), json!(101), json!(-1), json!(2.5), json!("5"), json!(true)] {
        let e = l.err("inbox", json!({"limit": limit})).await;
        assert_eq!(e["code"], "BAD_REQUEST", "{limit}");
        assert!(e["message"].as_str().unwrap().contains("data.limit"), "{e}");
    }
    let real = inbox(&mut l, json!({"limit": 1})).await["next"].as_str().unwrap().to_owned();
    for before in [
        json!("nope"),
        json!(""),
        json!(5),
        json!({"at": 1}),
        json!(real.to_uppercase()),
        json!(format!("{real}0")),
        json!(real.replacen("i1.", "i2.", 1)),
        json!(&real[..real.len() - 1]),
    ] {
        let e = l.err("inbox", json!({"before": before})).await;
        assert_eq!(e["code"], "BAD_REQUEST", "{before}");
        assert!(e["message"].as_str().unwrap().contains("data.before"), "{e}");
    }
    // Well formed, but no place of this inbox: a time past the room's last activity, a room
    // that does not exist.
    let room_of_real = &real[real.len() - 24..];
    for before in [format!("i1.7fffffffffffffff{room_of_real}"), format!("i1.0000000000000000{}", "0".repeat(24))] {
        let e = l.err("inbox", json!({"before": before})).await;
        assert_eq!(e["code"], "BAD_REQUEST", "{before}");
        assert_eq!(e["message"], "field data.before must be the `next` cursor of an earlier inbox reply", "{before}");
    }
    // The connection stays usable.
    assert_eq!(rooms(&inbox(&mut l, json!({"before": real})).await), made[1..]);
}

async fn two_teachers_never_see_each_other_s_rooms(server: TestServer) {
    let mine = server.add_request("t1").await.to_hex();
    let theirs = server.add_request("t2").await.to_hex();
    let mut t1 = connect(&server, "t1", "TEACHER").await;
    let mut t2 = connect(&server, "t2", "TEACHER").await;
    let mut l = connect(&server, "lab-1", "LAB").await;
    assert_eq!(t1.ok("subscribeInbox", json!({})).await, json!({}));
    assert_eq!(t2.ok("subscribeInbox", json!({})).await, json!({}));

    post(&mut l, &theirs, "for t2").await;
    let update = t2.expect("inboxUpdate").await;
    assert_eq!((update["requestId"].clone(), update["unread"].clone()), (json!(theirs), json!(1)));
    t1.expect_silence(QUIET).await;
    post(&mut l, &mine, "for t1").await;
    let update = t1.expect("inboxUpdate").await;
    assert_eq!((update["requestId"].clone(), update["unread"].clone()), (json!(mine), json!(1)));
    t2.expect_silence(QUIET).await;

    // t2 reads its room: only t2 hears of it.
    let id = update_id(&mut l, &theirs).await;
    t2.ok("readMessages", json!({"requestId": theirs, "messages": [id]})).await;
    assert_eq!(t2.expect("inboxUpdate").await["unread"], 0);
    t1.expect_silence(QUIET).await;

    let page = inbox(&mut t1, json!({})).await;
    assert_eq!((rooms(&page), unread(&page)), (vec![mine.clone()], vec![1]));
    let page = inbox(&mut t2, json!({})).await;
    assert_eq!((rooms(&page), unread(&page)), (vec![theirs.clone()], vec![0]));
    // The other's room stays forbidden, as everywhere.
    assert_eq!(t1.err("joinRoom", json!({"requestId": theirs})).await["code"], "FORBIDDEN");
    // A cursor naming it, well formed and a place of t2's inbox, is refused to t1 as made up.
    let cursor = format!("i1.0000000000000000{theirs}");
    assert_eq!(inbox(&mut t2, json!({"before": cursor})).await["rooms"], json!([]), "t2's own place");
    let e = t1.err("inbox", json!({"before": cursor})).await;
    assert_eq!(e["code"], "BAD_REQUEST", "{e}");
    assert_eq!(e["message"], "field data.before must be the `next` cursor of an earlier inbox reply");
}

/// The id of the last message of `rid`, through `c`'s inbox.
async fn update_id(c: &mut Client, rid: &str) -> Value {
    let page = inbox(c, json!({})).await;
    let row = page["rooms"].as_array().unwrap().iter().find(|r| r["requestId"] == rid).unwrap();
    row["lastMessage"]["id"].clone()
}

async fn live_updates_follow_posts_and_reads_on_every_device(server: TestServer) {
    let rid = server.add_request("t1").await.to_hex();
    let mut phone = connect(&server, "t1", "TEACHER").await;
    let mut laptop = connect(&server, "t1", "TEACHER").await;
    let mut l = connect(&server, "lab-1", "LAB").await;
    phone.ok("subscribeInbox", json!({})).await;
    phone.ok("subscribeInbox", json!({})).await;
    l.ok("subscribeInbox", json!({})).await;

    let m = post(&mut l, &rid, "results are in").await;
    let update = phone.expect("inboxUpdate").await;
    assert_eq!(
        update,
        json!({"requestId": rid, "lastMessage": m, "unread": 1, "lastActivityAt": m["createdAt"]}),
        "the same fields as an inbox row"
    );
    phone.expect_silence(QUIET).await;
    // The poster's own inbox hears of its own post, with nothing unread.
    let own = l.expect("inboxUpdate").await;
    assert_eq!((own["lastMessage"]["id"].clone(), own["unread"].clone()), (m["id"].clone(), json!(0)));
    laptop.expect_silence(QUIET).await;

    // Read on the laptop (not subscribed): the phone hears the count drop; lab-1 hears nothing
    // (its count did not change).
    laptop.ok("readMessages", json!({"requestId": rid, "messages": [m["id"]]})).await;
    let update = phone.expect("inboxUpdate").await;
    assert_eq!(update["unread"], 0);
    assert_eq!(update["lastMessage"]["readBy"][0]["userId"], "t1");
    l.expect_silence(QUIET).await;
    // Reading again changes nothing, so nothing is announced.
    laptop.ok("readMessages", json!({"requestId": rid, "messages": [m["id"]]})).await;
    phone.expect_silence(QUIET).await;

    // An own post from the laptop: the phone hears it, with nothing unread.
    let mine = post(&mut laptop, &rid, "thanks").await;
    let update = phone.expect("inboxUpdate").await;
    assert_eq!((update["lastMessage"]["id"].clone(), update["unread"].clone()), (mine["id"].clone(), json!(0)));
    assert_eq!(l.expect("inboxUpdate").await["unread"], 1);

    assert_eq!(phone.ok("unsubscribeInbox", json!({})).await, json!({}));
    assert_eq!(phone.ok("unsubscribeInbox", json!({})).await, json!({}), "twice is harmless");
    post(&mut l, &rid, "anyone?").await;
    phone.expect_silence(QUIET).await;
    assert_eq!(l.expect("inboxUpdate").await["unread"], 1);
}

/// Posts read after a burst was stored all read the same row: it is sent once, not once per
/// post; every update differs from the one before it and the last is the room as it is.
async fn a_burst_of_posts_sends_no_update_identical_to_the_last_one(server: TestServer) {
    const BURST: usize = 40;
    let rid = server.add_request("t1").await.to_hex();
    let mut t = connect(&server, "t1", "TEACHER").await;
    let mut l = connect(&server, "lab-1", "LAB").await;
    t.ok("subscribeInbox", json!({})).await;
    for i in 0..BURST {
        l.emit("message", json!({"requestId": rid, "message": format!("burst {i}")})).await;
    }
    let last = post(&mut l, &rid, "last").await;
    let mut updates: Vec<Value> = Vec::new();
    while updates.last().is_none_or(|u| u["lastMessage"]["id"] != last["id"]) {
        updates.push(t.expect("inboxUpdate").await);
    }
    t.expect_silence(QUIET).await;
    for pair in updates.windows(2) {
        assert_ne!(pair[0], pair[1], "an update identical to the one before it");
    }
    assert_eq!(updates.last().unwrap()["unread"], BURST + 1);
}

/// Gives the request another creator, as the lab system would (in the server's store).
async fn reassign(server: &TestServer, id: RequestId, creator: &str) {
    match (&server.memory, &server.mongo) {
        (Some(mem), _) => mem.add_request(Request::new(id, UserId::parse(creator).unwrap())),
        (None, Some(m)) => {
            let requests = m.db.collection::<Document>(&m.settings.requests_collection);
            let oid = ObjectId::from_bytes(id.object_id().bytes());
            requests.delete_one(doc! {"_id": oid}).await.unwrap();
            let creator = Creator::Text(creator.to_owned());
            labchat_tests::mongo::insert_request(&m.db, &m.settings, id, &creator).await;
        }
        (None, None) => panic!("no store"),
    }
}

async fn a_reassigned_request_leaves_the_old_teacher_s_inbox_and_updates_at_once(server: TestServer) {
    let id = server.add_request("t1").await;
    let rid = id.to_hex();
    let mut t1 = connect(&server, "t1", "TEACHER").await;
    let mut t2 = connect(&server, "t2", "TEACHER").await;
    let mut l = connect(&server, "lab-1", "LAB").await;
    t1.ok("subscribeInbox", json!({})).await;
    t2.ok("subscribeInbox", json!({})).await;
    post(&mut l, &rid, "before").await;
    assert_eq!(t1.expect("inboxUpdate").await["requestId"], rid);
    assert_eq!(rooms(&inbox(&mut t1, json!({})).await), [rid.as_str()]);

    reassign(&server, id, "t2").await;
    // No cache in the way: the next page and the next update follow the stored request.
    assert_eq!(rooms(&inbox(&mut t1, json!({})).await), Vec::<String>::new(), "gone from the old teacher's inbox");
    assert_eq!(rooms(&inbox(&mut t2, json!({})).await), [rid.as_str()], "in the new teacher's");
    post(&mut l, &rid, "after").await;
    assert_eq!(t2.expect("inboxUpdate").await["requestId"], rid);
    t1.expect_silence(QUIET).await;
}
