//! Limits, liveness, token lifetime, reconnect and shutdown, end to end with short configured
//! intervals.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use labchat_core::ChatStore;
use labchat_domain::{Cursor, HistoryLimit, HistoryQuery, RequestId};
use labchat_tests::client::{Client, handshake_bearer, refusal};
use labchat_tests::harness::{TestServer, now_secs, settings, sign, token};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_frame_over_the_size_limit_closes_with_1009() {
    let server = TestServer::start().await;
    let mut c = Client::connect(&server.url(), &token("lab", "LAB")).await;
    let big = format!(r#"{{"event":"message","data":{{"message":"{}"}}}}"#, "x".repeat(64 * 1024));
    c.send_text(&big).await;
    assert_eq!(c.expect_close().await, 1009);
}

#[tokio::test]
async fn a_connection_may_join_only_so_many_rooms() {
    let mut s = settings();
    s.ws.max_rooms_per_connection = 3;
    let server = TestServer::start_with(s).await;
    let mut rooms: Vec<String> = Vec::new();
    for _ in 0..4 {
        rooms.push(server.add_request("t").await.to_hex());
    }
    let mut c = Client::connect(&server.url(), &token("lab", "LAB")).await;
    for r in &rooms[..3] {
        c.join(r).await;
    }
    c.join(&rooms[0]).await; // rejoining a joined room is not a new room
    let e = c.err("joinRoom", json!({"requestId": rooms[3]})).await;
    assert_eq!(e["code"], "BAD_REQUEST");
    assert!(e["message"].as_str().unwrap().contains("at most 3 rooms"), "{e}");
    c.ok("leaveRoom", json!({"requestId": rooms[1]})).await;
    c.join(&rooms[3]).await;
}

#[tokio::test]
async fn excess_frames_are_rate_limited_and_hammering_closes_with_1008() {
    let mut s = settings();
    s.ws.rate_per_second = 0.2;
    s.ws.rate_burst = 5.0;
    s.ws.rate_close_after = Duration::from_millis(1500);
    let server = TestServer::start_with(s).await;
    let rid = server.add_request("t").await.to_hex();
    let mut c = Client::connect(&server.url(), &token("lab", "LAB")).await;
    for i in 0..8 {
        c.send(json!({"event":"leaveRoom","data":{"requestId":rid},"id":i})).await;
    }
    let mut acks = 0;
    let mut limited = Vec::new();
    for _ in 0..8 {
        let f = c.recv().await;
        match f["event"].as_str() {
            Some("ack") => acks += 1,
            Some("error") => limited.push((f["id"].clone(), f["data"].clone())),
            _ => panic!("{f}"),
        }
    }
    assert_eq!((acks, limited.len()), (5, 3), "the burst passes, the rest is refused");
    assert_eq!(limited.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(), [json!(5), json!(6), json!(7)]);
    for (_, e) in &limited {
        assert_eq!(e["event"], "leaveRoom");
        assert_eq!((e["code"].as_str(), e["retryable"].as_bool()), (Some("RATE_LIMITED"), Some(true)));
        assert!(e["retryAfterMs"].as_u64().unwrap() >= 1, "{e}");
    }
    // Keep hammering: closed with 1008 once limited for longer than configured.
    let hammer = async {
        loop {
            if c.ws.send(Message::text(r#"{"event":"x","data":{}}"#)).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(3), hammer).await;
    assert_eq!(c.expect_close().await, 1008);
}

#[tokio::test]
async fn a_silent_peer_is_dropped_after_two_ping_intervals_and_a_live_one_stays() {
    let mut s = settings();
    s.ws.ping_interval = Duration::from_millis(200);
    let server = TestServer::start_with(s).await;
    let rid = server.add_request("t").await.to_hex();
    // A peer that never reads never answers pings (its pongs are sent while reading).
    let silent = Client::connect(&server.url(), &token("lab-a", "LAB")).await;
    let mut live = Client::connect(&server.url(), &token("lab-b", "LAB")).await;
    live.join(&rid).await;
    wait_until("two open connections", || server.stats.open_connections() == 2).await;
    // The live client keeps reading (and so answering pings) for several intervals.
    live.expect_silence(Duration::from_millis(1200)).await;
    assert_eq!(server.stats.open_connections(), 1, "only the silent peer was closed");
    live.post(&rid, "still here").await;
    drop(silent);
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_with_1013_and_the_others_keep_up() {
    let mut s = settings();
    s.ws.outbound_max_frames = 64;
    s.ws.outbound_max_bytes = 256 * 1024;
    s.ws.rate_per_second = 100_000.0;
    s.ws.rate_burst = 100_000.0;
    let server = TestServer::start_with(s).await;
    let rid = server.add_request("t").await.to_hex();
    let mut slow = Client::connect(&server.url(), &token("slow", "LAB")).await;
    slow.join(&rid).await;
    let mut reader = Client::connect(&server.url(), &token("reader", "LAB")).await;
    reader.join(&rid).await;
    let mut sender = Client::connect(&server.url(), &token("sender", "LAB")).await;
    let text = "y".repeat(3900);
    // ~8 MB to a peer that reads nothing: more than loopback socket buffers and the queue hold.
    let n = 2000;
    let reading = tokio::spawn(async move {
        for _ in 0..n {
            reader.expect("message").await;
        }
        reader
    });
    for i in 0..n {
        // No correlation id: the sender reads nothing either, so it must get no replies.
        sender.send(json!({"event":"message","data":{"requestId":rid,"message":format!("{i} {text}")}})).await;
    }
    let reader = tokio::time::timeout(Duration::from_secs(30), reading).await.expect("reader kept up").unwrap();
    wait_until("the slow connection to close", || server.stats.open_connections() == 2).await;
    // The slow peer, reading at last, finds the stream ends with a 1013 close.
    let code = loop {
        match tokio::time::timeout(Duration::from_secs(5), slow.ws.next()).await.expect("stream ends") {
            Some(Ok(Message::Close(Some(f)))) => break Some(u16::from(f.code)),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => break None,
        }
    };
    assert!(matches!(code, Some(1013) | None), "close code {code:?}");
    drop(reader);
}

#[tokio::test]
async fn at_exp_the_server_says_token_expired_and_closes_with_4001() {
    let server = TestServer::start().await;
    let t = sign(&json!({"sub":"lab","role":"LAB","exp":now_secs() + 2}));
    let mut c = Client::connect(&server.url(), &t).await;
    let f = tokio::time::timeout(Duration::from_secs(4), c.recv()).await.unwrap();
    assert_eq!((f["event"].as_str(), f["data"]["code"].as_str()), (Some("error"), Some("TOKEN_EXPIRED")));
    assert_eq!(c.expect_close().await, 4001);
}

#[tokio::test]
async fn a_refresh_for_the_same_user_extends_the_connection() {
    let server = TestServer::start().await;
    let mut c = Client::connect(&server.url(), &sign(&json!({"sub":"lab","role":"LAB","exp":now_secs() + 2}))).await;
    let fresh = sign(&json!({"sub":"lab","role":"LAB","exp":now_secs() + 3600}));
    let ack = c.ok("refreshToken", json!({"token": fresh})).await;
    assert!(ack["expiresAt"].as_str().unwrap().ends_with('Z'));
    c.expect_silence(Duration::from_secs(3)).await;
    // An invalid refresh token is refused and the current one still holds.
    let e = c.err("refreshToken", json!({"token": "garbage"})).await;
    assert_eq!((&e["code"], &e["retryable"]), (&json!("UNAUTHORIZED"), &json!(true)), "retry with a new token");
    // So is a valid one that expires before the current one: a refresh never shortens.
    let earlier = sign(&json!({"sub":"lab","role":"LAB","exp":now_secs() + 4}));
    let e = c.err("refreshToken", json!({"token": earlier})).await;
    assert_eq!((&e["code"], &e["retryable"]), (&json!("UNAUTHORIZED"), &json!(true)), "{e}");
    assert!(e["message"].as_str().unwrap().contains("before the current one"), "{e}");
    c.expect_silence(Duration::from_secs(5)).await;
    let rid = server.add_request("t").await.to_hex();
    c.join(&rid).await;
}

#[tokio::test]
async fn a_refresh_for_another_user_or_role_is_forbidden_and_closes_with_4003() {
    let server = TestServer::start().await;
    for other in [
        json!({"sub":"someone-else","role":"LAB","exp":now_secs() + 3600}),
        json!({"sub":"lab","role":"TEACHER","exp":now_secs() + 3600}),
    ] {
        let mut c = Client::connect(&server.url(), &token("lab", "LAB")).await;
        let e = c.err("refreshToken", json!({"token": sign(&other)})).await;
        assert_eq!(e["code"], "FORBIDDEN");
        assert_eq!(c.expect_close().await, 4003);
    }
}

fn ids(page: &Value) -> Vec<String> {
    page["messages"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn reconnecting_with_after_catches_up_with_no_gap_and_no_duplicate() {
    let mut s = settings();
    s.history_limit = HistoryLimit::new(3).unwrap();
    let server = TestServer::start_with(s).await;
    let rid = server.add_request("t1").await.to_hex();
    let mut t = Client::connect(&server.url(), &token("t1", "TEACHER")).await;
    let mut sent = Vec::new();
    for i in 0..7 {
        sent.push(t.post(&rid, &format!("m{i}")).await["id"].as_str().unwrap().to_owned());
    }
    let mut l = Client::connect(&server.url(), &token("lab", "LAB")).await;
    let latest = l.join(&rid).await;
    assert_eq!((ids(&latest), latest["hasMore"].as_bool()), (sent[4..].to_vec(), Some(true)));

    // "Disconnected" after m1: catch up in pages of 3.
    let page = |after: &str| json!({"requestId": rid, "after": after});
    let frames = l.call("joinRoom", page(&sent[1])).await;
    assert_eq!((ids(&frames[0]["data"]), frames[0]["data"]["hasMore"].as_bool()), (sent[2..5].to_vec(), Some(true)));
    let frames = l.call("joinRoom", page(&sent[4])).await;
    assert_eq!((ids(&frames[0]["data"]), frames[0]["data"]["hasMore"].as_bool()), (sent[5..].to_vec(), Some(false)));
    let frames = l.call("joinRoom", page(&sent[6])).await;
    assert_eq!(ids(&frames[0]["data"]), Vec::<String>::new());
    // Live from here on.
    let m = t.post(&rid, "live").await;
    assert_eq!(l.expect("message").await, m);
}

#[tokio::test]
async fn history_pages_scroll_back() {
    let server = TestServer::start().await;
    let rid = server.add_request("t1").await.to_hex();
    let mut t = Client::connect(&server.url(), &token("t1", "TEACHER")).await;
    let mut sent = Vec::new();
    for i in 0..5 {
        sent.push(t.post(&rid, &format!("m{i}")).await["id"].as_str().unwrap().to_owned());
    }
    let frames = t.call("history", json!({"requestId": rid, "limit": 2})).await;
    assert_eq!(frames[0]["event"], "roomHistory");
    assert_eq!((ids(&frames[0]["data"]), frames[0]["data"]["hasMore"].as_bool()), (sent[3..].to_vec(), Some(true)));
    let frames = t.call("history", json!({"requestId": rid, "before": sent[3], "limit": 2})).await;
    assert_eq!((ids(&frames[0]["data"]), frames[0]["data"]["hasMore"].as_bool()), (sent[1..3].to_vec(), Some(true)));
    let frames = t.call("history", json!({"requestId": rid, "before": sent[1], "limit": 2})).await;
    assert_eq!((ids(&frames[0]["data"]), frames[0]["data"]["hasMore"].as_bool()), (sent[..1].to_vec(), Some(false)));
    assert_eq!(t.err("history", json!({"requestId": rid, "limit": 0})).await["code"], "BAD_REQUEST");
}

#[tokio::test]
async fn beyond_the_connection_limit_the_handshake_gets_503() {
    let mut s = settings();
    s.ws.max_connections = 2;
    let server = TestServer::start_with(s).await;
    let a = Client::connect(&server.url(), &token("a", "LAB")).await;
    let _b = Client::connect(&server.url(), &token("b", "LAB")).await;
    let (status, body) = refusal(handshake_bearer(&server.url(), &token("c", "LAB")).await);
    assert_eq!((status, body["code"].as_str()), (503, Some("UNAVAILABLE")));
    drop(a);
    wait_until("a slot to free", || server.stats.open_connections() == 1).await;
    Client::connect(&server.url(), &token("c", "LAB")).await;
}

#[tokio::test]
async fn shutdown_finishes_in_flight_sends_and_closes_with_1001() {
    let server = TestServer::start().await;
    let rid = server.add_request("t1").await;
    let memory = server.memory.clone().unwrap();
    let mut c = Client::connect(&server.url(), &token("t1", "TEACHER")).await;
    c.send(json!({"event":"message","data":{"requestId":rid.to_hex(),"message":"last words"},"id":"m"})).await;
    // Stop right away, while the frame is in flight.
    let took = server.stop().await;
    assert!(took < Duration::from_secs(10), "shutdown took {took:?}");
    // Whatever the client was told, a message it was acked is stored, and it got a 1001 close.
    let mut acked = None;
    let code = loop {
        match tokio::time::timeout(Duration::from_secs(5), c.ws.next()).await.expect("frames or close") {
            Some(Ok(Message::Text(t))) => {
                let f: Value = serde_json::from_str(t.as_str()).unwrap();
                if f["event"] == "ack" {
                    acked = Some(f["data"]["id"].as_str().unwrap().to_owned());
                }
            }
            Some(Ok(Message::Close(Some(f)))) => break u16::from(f.code),
            other => panic!("expected frames then a close, got {other:?}"),
        }
    };
    assert_eq!(code, 1001);
    let page = memory
        .history(rid, HistoryQuery { cursor: Cursor::Latest, limit: HistoryLimit::DEFAULT })
        .await
        .unwrap()
        .unwrap();
    if let Some(id) = acked {
        assert!(page.messages.iter().any(|m| m.id.to_hex() == id), "acked message is stored");
    }
    let _: RequestId = rid;
}
