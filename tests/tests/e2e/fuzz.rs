//! Property test of the dispatcher over a real connection: arbitrary frames (valid, malformed and
//! hostile, with correlation ids) never crash or stall the server, every frame with an id gets
//! exactly one final `ack` or `error` (and an `error` is one a frame itself can cause: `BAD_REQUEST`,
//! `FORBIDDEN`, `UNKNOWN_AFTER` or `CLIENT_MESSAGE_ID_REUSED`), and
//! the connection stays usable.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use labchat_domain::RoomEventKind;
use labchat_tests::client::Client;
use labchat_tests::harness::{TestServer, settings, token};
use labchat_transport_ws::protocol::CLIENT_EVENTS;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Value, json};

/// Every client event, from its one home, and one unknown event.
fn events() -> Vec<&'static str> {
    CLIENT_EVENTS.iter().copied().chain(["nope"]).collect()
}

fn arb_value(ids: Vec<String>) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        "[ -~]{0,12}".prop_map(Value::String),
        prop::sample::select(ids).prop_map(Value::String),
        prop::sample::select(events()).prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "requestId",
                    "resquestId",
                    "message",
                    "messages",
                    "after",
                    "before",
                    "limit",
                    "clientMessageId",
                    "token",
                    "senderId",
                ])
                .prop_map(str::to_owned),
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Plausible field values: ids of the rooms and messages in play, or something hostile.
fn arb_field(ids: Vec<String>) -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => prop::sample::select(ids.clone()).prop_map(Value::String),
        2 => prop::collection::vec(prop::sample::select(ids).prop_map(Value::String), 0..4).prop_map(Value::Array),
        1 => "[ -~]{1,8}".prop_map(Value::String),
        1 => (1..300_i32).prop_map(|n| json!(n)),
        1 => arb_value(vec!["x".into()]),
    ]
}

/// A frame: mostly the envelope with a known event and data shaped for it (so that many
/// succeed) plus random extra or replaced fields, sometimes arbitrary data, sometimes anything.
fn arb_frame(ids: Vec<String>) -> impl Strategy<Value = Value> {
    let keys = prop::sample::select(vec![
        "requestId",
        "resquestId",
        "message",
        "messages",
        "after",
        "before",
        "limit",
        "clientMessageId",
        "senderId",
    ]);
    let id = prop::sample::select(ids.clone());
    let id_list = prop::collection::vec(prop::sample::select(ids.clone()), 1..4);
    let shaped = (prop::sample::select(events()), id, id_list, "[ -~]{0,12}", any::<bool>()).prop_map(
        |(event, rid, list, text, with_cursor)| {
            let data = match event {
                "message" => json!({"requestId": rid, "message": text}),
                "ackMessages" | "readMessages" => json!({"requestId": rid, "messages": list}),
                "joinRoom" if with_cursor => json!({"requestId": rid, "after": list[0]}),
                "history" if with_cursor => json!({"requestId": rid, "before": list[0], "limit": 5}),
                _ => json!({"requestId": rid}),
            };
            (event, data)
        },
    );
    let mangled = (shaped, prop::collection::btree_map(keys.prop_map(str::to_owned), arb_field(ids.clone()), 0..3))
        .prop_map(|((event, mut data), extra)| {
            if let Some(obj) = data.as_object_mut() {
                obj.extend(extra);
            }
            json!({"event": event, "data": data})
        });
    prop_oneof![
        6 => mangled,
        2 => (prop::sample::select(events()), arb_value(ids.clone())).prop_map(|(e, d)| json!({"event": e, "data": d})),
        1 => arb_value(ids),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arbitrary_frames_get_one_reply_each_and_never_break_the_connection() {
    let mut s = settings();
    s.ws.rate_per_second = 1e6;
    s.ws.rate_burst = 1e6;
    let server = TestServer::start_with(s).await;
    let own = server.add_request("t1").await.to_hex();
    let foreign = server.add_request("t2").await.to_hex();
    let mut c = Client::connect(&server.url(), &token("t1", "TEACHER")).await;
    let m = c.post(&own, "seed").await["id"].as_str().unwrap().to_owned();
    let ids = vec![own.clone(), foreign.clone(), m, "0123456789abcdef01234567".into()];

    // A fixed seed: the same frames on every run, so a failure reproduces.
    let rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
    let mut runner = TestRunner::new_with_rng(Config { cases: 300, ..Config::default() }, rng);
    let frames: Vec<Value> =
        (0..300).map(|_| arb_frame(ids.clone()).new_tree(&mut runner).unwrap().current()).collect();
    let (mut acks, mut errors) = (0, 0);
    for (n, frame) in frames.into_iter().enumerate() {
        let id = 10_000 + n;
        let mut frame = frame;
        if let Some(obj) = frame.as_object_mut() {
            obj.insert("id".into(), json!(id));
        }
        // Keep the connection: no refreshToken that could close it, no join flood.
        if frame["event"] == "refreshToken" {
            continue;
        }
        c.send(frame.clone()).await;
        if frame.is_object() {
            let mut finals = 0;
            loop {
                let f = c.recv().await;
                if f["id"] == json!(id) && (f["event"] == "ack" || f["event"] == "error") {
                    finals += 1;
                    if f["event"] == "ack" {
                        acks += 1;
                    } else {
                        errors += 1;
                    }
                    if f["event"] == "error" {
                        let code = f["data"]["code"].as_str().unwrap();
                        // A clientMessageId drawn again with another text is refused as reused.
                        let allowed = ["BAD_REQUEST", "FORBIDDEN", "UNKNOWN_AFTER", "CLIENT_MESSAGE_ID_REUSED"];
                        assert!(allowed.contains(&code), "{frame} -> {f}");
                    }
                    break;
                }
                // Anything else must be a room event, a history page or an inbox update of an
                // allowed room.
                let ev = f["event"].as_str().unwrap();
                let room_event = RoomEventKind::ALL.iter().any(|k| k.as_str() == ev);
                assert!(room_event || matches!(ev, "roomHistory" | "error" | "inboxUpdate"), "{frame} -> {f}");
                if ev == "roomHistory" || ev == "message" || ev == "inboxUpdate" {
                    assert_ne!(f["data"]["requestId"], json!(foreign), "never a foreign room's data: {f}");
                }
            }
            assert_eq!(finals, 1);
        } else {
            // An inbox update of an earlier post may come first (the connection may have
            // subscribed); it is never about a foreign room.
            let mut f = c.recv().await;
            while f["event"] == "inboxUpdate" {
                assert_ne!(f["data"]["requestId"], json!(foreign), "never a foreign room's data: {f}");
                f = c.recv().await;
            }
            assert_eq!((f["event"].as_str(), f["data"]["code"].as_str()), (Some("error"), Some("BAD_REQUEST")));
        }
    }
    eprintln!("{acks} frames acknowledged, {errors} refused");
    assert!(acks > 25 && errors > 50, "the generator exercises both paths: {acks} acks, {errors} errors");
    // Still fully usable.
    assert_eq!(c.post(&own, "after the storm").await["message"], "after the storm");
}
