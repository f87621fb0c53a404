//! How the MongoDB store picks a room's next seq when several nodes post into one room: it
//! guesses from what it knows, and a conflict on the unique seq index costs one more insert, not a
//! read. Counted with the store's `labchat_store_seq_conflicts_total`, through a Prometheus
//! recorder of this test's own: local to its thread, where a current-thread runtime runs the whole
//! test, so the metrics of the other suites in this process (whose servers install the
//! process-wide recorder) do not count.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use labchat_core::{ChatStore, Inserted};
use labchat_domain::{Message, MessageId, MessageRecord, MessageText, Role, Seq, Timestamp, UserId};
use labchat_store_mongo::MongoStore;
use labchat_tests::contract::rid;
use labchat_tests::mongo;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

const CONFLICTS: &str = "labchat_store_seq_conflicts_total";

fn message(n: u64) -> Message {
    Message::restore(MessageRecord {
        id: MessageId::parse(&format!("{n:024x}")).unwrap(),
        request_id: rid(7),
        seq: None,
        sender_id: UserId::parse("teacher-1").unwrap(),
        sender_role: Role::Teacher,
        text: Some(MessageText::parse("hello", 100).unwrap()),
        created_at: Timestamp::from_unix_millis(1_700_000_000_000 + n as i64),
        client_message_id: None,
        delivered_to: vec![],
        read_by: vec![],
        edited_at: None,
        deleted_at: None,
        deleted_by: None,
    })
    .unwrap()
}

async fn insert(store: &MongoStore, n: u64) -> u64 {
    match store.insert_message(&message(n)).await.unwrap() {
        Inserted::New(seq) => seq.get(),
        other => panic!("message {n}: {other:?}"),
    }
}

#[test]
fn a_node_guesses_the_next_seq_from_what_it_heard_and_from_conflicts() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    metrics::with_local_recorder(&recorder, || runtime.block_on(guesses(&handle)));
}

async fn guesses(handle: &PrometheusHandle) {
    let conflicts = || {
        handle
            .render()
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{CONFLICTS} ")).map(|v| v.trim().parse::<f64>().unwrap()))
            .unwrap_or(0.0)
    };
    let settings = mongo::test_settings("sequencer_guesses");
    let a = MongoStore::connect(settings.clone()).await.unwrap();
    let b = MongoStore::connect(settings).await.unwrap();

    // Node b posts first, so it knows the room up to seq 1; then node a posts 2 and 3.
    assert_eq!(insert(&b, 1).await, 1);
    assert_eq!(insert(&a, 2).await, 2);
    assert_eq!(insert(&a, 3).await, 3);

    // b heard of seq 3 (from the backplane): its next insert takes 4 at the first try.
    b.seq_seen(rid(7), Seq::new(3).unwrap());
    assert_eq!(insert(&b, 4).await, 4);
    assert_eq!(conflicts(), 0.0, "a heard seq spares the conflict");

    // a did not hear of 4: it tries 4 (taken), then 5 (free), without reading the room.
    assert_eq!(insert(&a, 5).await, 5);
    assert_eq!(conflicts(), 1.0);

    // b is now two behind and hears nothing: 5 and 6 taken, 7 free.
    assert_eq!(insert(&a, 6).await, 6);
    assert_eq!(insert(&b, 7).await, 7);
    assert_eq!(conflicts(), 3.0);

    // A hint below what a store knows changes nothing.
    a.seq_seen(rid(7), Seq::new(1).unwrap());
    assert_eq!(insert(&a, 8).await, 8);
    assert_eq!(conflicts(), 4.0, "a tried 7 (taken by b), then 8");

    // A hint far past what the store holds (a forged envelope's seq) moves nothing: the next
    // insert reads the room's highest seq and takes the one after it, leaving no hole.
    a.seq_seen(rid(7), Seq::new(1_000).unwrap());
    assert_eq!(insert(&a, 9).await, 9);
    b.seq_seen(rid(7), Seq::new(1_000_000).unwrap());
    assert_eq!(insert(&b, 10).await, 10);
    assert_eq!(conflicts(), 4.0, "b read the room instead of guessing 8");
    // Nor for a room the node never posted in.
    let fresh = MongoStore::connect(mongo::test_settings("sequencer_guesses_hint")).await.unwrap();
    fresh.seq_seen(rid(7), Seq::new(500).unwrap());
    assert_eq!(insert(&fresh, 1).await, 1);
}
