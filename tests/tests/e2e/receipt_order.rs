//! Receipts are ordered with joins, like messages: a client that joins a room while others mark
//! its messages gets every receipt exactly once, either in the history it joined with or live
//! after it, never both and never neither. Over real websockets on the in-memory store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::future::join_all;
use labchat_tests::client::{Client, WAIT};
use labchat_tests::harness::{TestServer, token};
use serde_json::{Value, json};

const MESSAGES: usize = 12;
const MARKERS: usize = 10;
const JOINERS: usize = 150;
const DONE: &str = "done: every mark was answered";

/// One receipt: (message id, "delivered" | "read", user id).
type Receipt = (String, &'static str, String);

/// A small deterministic generator (the test needs spread, not quality).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// Counts each receipt of a `roomHistory` page.
fn count_history(history: &Value, counts: &mut BTreeMap<Receipt, usize>) {
    for m in history["messages"].as_array().unwrap() {
        let id = m["id"].as_str().unwrap();
        for (list, kind) in [("deliveredTo", "delivered"), ("readBy", "read")] {
            for r in m[list].as_array().unwrap() {
                let user = r["userId"].as_str().unwrap().to_owned();
                *counts.entry((id.to_owned(), kind, user)).or_default() += 1;
            }
        }
    }
}

/// Counts each receipt of a live `messagesDelivered` / `messageReads` frame; `false` for other
/// frames.
fn count_live(frame: &Value, counts: &mut BTreeMap<Receipt, usize>) -> bool {
    let kind = match frame["event"].as_str() {
        Some("messagesDelivered") => "delivered",
        Some("messageReads") => "read",
        _ => return false,
    };
    let user = frame["data"]["userId"].as_str().unwrap();
    for id in frame["data"]["messages"].as_array().unwrap() {
        *counts.entry((id.as_str().unwrap().to_owned(), kind, user.to_owned())).or_default() += 1;
    }
    true
}

/// A marker: marks every message delivered or read, one frame per message, in a shuffled order,
/// with short random pauses.
async fn marker(server: &TestServer, rid: &str, n: usize, ids: &[String], seed: u64) {
    let mut c = Client::connect(&server.url(), &token(&format!("marker-{n}"), "LAB")).await;
    let mut rng = Lcg(seed);
    let mut order: Vec<&String> = ids.iter().collect();
    for i in (1..order.len()).rev() {
        let j = usize::try_from(rng.below(i as u64 + 1)).unwrap();
        order.swap(i, j);
    }
    for id in order {
        tokio::time::sleep(Duration::from_millis(rng.below(12))).await;
        let event = if rng.below(2) == 0 { "ackMessages" } else { "readMessages" };
        c.ok(event, json!({"requestId": rid, "messages": [id]})).await;
    }
}

/// A joiner: connects, waits a random while, joins, then reads the room until `DONE` is posted.
/// Returns how many times it saw each receipt (history and live together).
async fn joiner(server: &TestServer, rid: &str, n: usize, seed: u64) -> BTreeMap<Receipt, usize> {
    let mut c = Client::connect(&server.url(), &token(&format!("joiner-{n}"), "LAB")).await;
    let mut rng = Lcg(seed);
    tokio::time::sleep(Duration::from_millis(rng.below(150))).await;
    let mut counts = BTreeMap::new();
    // Live receipts may come between the history and the join's ack.
    let frames = c.call("joinRoom", json!({"requestId": rid})).await;
    assert_eq!(frames.last().unwrap()["event"], "ack", "joiner {n}: {frames:?}");
    for f in &frames[..frames.len() - 1] {
        if f["event"] == "roomHistory" {
            count_history(&f["data"], &mut counts);
        } else {
            assert!(count_live(f, &mut counts), "joiner {n}: unexpected frame {f}");
        }
    }
    loop {
        let f = c.try_recv(WAIT * 4).await.unwrap_or_else(|| panic!("joiner {n}: the room went quiet before {DONE:?}"));
        if count_live(&f, &mut counts) {
            continue;
        }
        if f["event"] == "message" && f["data"]["message"] == DONE {
            return counts;
        }
        panic!("joiner {n}: unexpected frame {f}");
    }
}

/// One round: markers and joiners at random times; then every joiner's receipts must be exactly
/// the stored ones, each once.
async fn round(round: u64) -> Vec<String> {
    let server = TestServer::start().await;
    let rid = server.add_request("t1").await.to_hex();
    let mut t = Client::connect(&server.url(), &token("t1", "TEACHER")).await;
    let mut ids = Vec::new();
    for i in 0..MESSAGES {
        ids.push(t.post(&rid, &format!("message {i}")).await["id"].as_str().unwrap().to_owned());
    }

    let markers = join_all((0..MARKERS).map(|n| marker(&server, &rid, n, &ids, round * 1000 + n as u64 + 1)));
    let (server_ref, rid_ref) = (&server, &rid);
    let joiners = join_all((0..JOINERS).map(|n| async move {
        let counts = joiner(server_ref, rid_ref, n, round * 7919 + n as u64 + 3).await;
        (n, counts)
    }));
    // The joiners read until DONE, which is posted once every marker has been answered.
    let (seen, ()) = tokio::time::timeout(WAIT * 6, async {
        tokio::join!(joiners, async {
            markers.await;
            t.post(&rid, DONE).await;
        })
    })
    .await
    .expect("the round finishes");

    let mut stored = BTreeMap::new();
    let mut checker = Client::connect(&server.url(), &token("checker", "LAB")).await;
    count_history(&checker.join(&rid).await, &mut stored);
    assert!(stored.len() >= MARKERS * MESSAGES, "round {round}: every mark is stored: {}", stored.len());

    let mut problems = Vec::new();
    for (n, counts) in seen {
        for (receipt, times) in &counts {
            if *times > 1 {
                problems.push(format!("round {round} joiner {n}: {receipt:?} seen {times} times"));
            }
            if !stored.contains_key(receipt) {
                problems.push(format!("round {round} joiner {n}: {receipt:?} seen but not stored"));
            }
        }
        for receipt in stored.keys().filter(|r| !counts.contains_key(*r)) {
            problems.push(format!("round {round} joiner {n}: stored {receipt:?} never seen"));
        }
    }
    server.stop().await;
    problems
}

/// Markers mark while joiners join: no joiner misses a receipt or gets one twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_joiner_gets_every_receipt_exactly_once() {
    let mut problems = Vec::new();
    for r in 0..5 {
        problems.extend(round(r).await);
    }
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
}
