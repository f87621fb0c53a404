//! The connection under hostile or unlucky peers, end to end over real sockets: peers that stop
//! reading (write deadline, token expiry and shutdown still honoured), the rate limit's closing
//! rule, the closing handshake, and malformed websocket frames.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use labchat_tests::client::{Client, Ws};
use labchat_tests::harness::{TestServer, now_secs, settings, sign, token};
use labchat_transport_ws::WsConfig;
use serde_json::{Value, json};
use tokio::net::TcpSocket;
use tokio::time::Instant;
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::{Bytes, Message};

/// The ping interval of these tests' servers, unless a test needs pings out of the way.
const PING: Duration = Duration::from_millis(500);

/// Waits (bounded) until `cond` holds; returns how long that took.
async fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !cond() {
        assert!(started.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

/// Settings for the slow-reader tests: no rate limit in the way, an outbound bound far above
/// what the tests queue (so the connection is not closed for overflow), and `ping`.
fn slow_reader_settings(ping: Duration) -> labchat::app::Settings {
    let mut s = settings();
    s.ws = WsConfig {
        ping_interval: ping,
        rate_per_second: 10_000.0,
        rate_burst: 10_000.0,
        outbound_max_bytes: 64 * 1024 * 1024,
        outbound_max_frames: 4096,
        ..WsConfig::default()
    };
    s
}

/// Fills a room with a full history page (200 messages of 3000 characters, about 600 KiB).
async fn fill_room(server: &TestServer) -> String {
    let rid = server.add_request("t").await.to_hex();
    let mut c = Client::connect(&server.url(), &token("filler", "LAB")).await;
    let text = "x".repeat(3000);
    for i in 0..200 {
        let frame = json!({"event": "message", "data": {"requestId": rid, "message": text}, "id": i});
        c.ws.feed(Message::text(frame.to_string())).await.unwrap();
    }
    c.ws.flush().await.unwrap();
    for _ in 0..200 {
        assert_eq!(c.recv().await["event"], "ack");
    }
    rid
}

/// A websocket client whose socket has a 4 KiB receive buffer.
async fn small_buffer_client(server: &TestServer, token: &str) -> Ws {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(server.addr).await.unwrap();
    let mut req = server.url().into_client_request().unwrap();
    req.headers_mut().insert("Authorization", HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
    let (ws, _) = tokio_tungstenite::client_async(req, MaybeTlsStream::Plain(stream)).await.unwrap();
    ws
}

/// A client that asks for 8 full history pages of `rid` (about 5 MiB) and reads none of it.
async fn stuck_client(server: &TestServer, rid: &str, token: &str) -> Ws {
    let mut ws = small_buffer_client(server, token).await;
    for i in 0..8 {
        let frame = json!({"event": "history", "data": {"requestId": rid}, "id": i});
        ws.send(Message::text(frame.to_string())).await.unwrap();
    }
    ws
}

/// A frame of this size or more can only be taken in by a client that reads: far more than the
/// stuck clients' 4 KiB receive buffer and the server's send buffer toward them hold.
const BLOCKING_FRAME: u64 = 256 * 1024;

/// Waits (bounded by `limit`) until the server has started sending `ws` a frame of at least
/// [`BLOCKING_FRAME`] bytes (a history page): as `ws` is never read, the server's write to it is
/// pending from then on. Looks at the bytes waiting in the client's socket without taking them.
async fn wait_for_a_blocked_write(ws: &Ws, limit: Duration) {
    let MaybeTlsStream::Plain(stream) = ws.get_ref() else { panic!("a plain TCP client") };
    let blocked = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = stream.peek(&mut buf).await.unwrap();
            assert!(n > 0, "the server closed the connection");
            if starts_a_big_frame(&buf[..n]) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(limit, blocked)
        .await
        .unwrap_or_else(|_| panic!("no frame of {BLOCKING_FRAME} bytes or more began within {limit:?}"));
}

/// Whether the server-to-client websocket frames in `bytes` (unmasked) include the header of a
/// frame of [`BLOCKING_FRAME`] bytes or more.
fn starts_a_big_frame(mut bytes: &[u8]) -> bool {
    while bytes.len() >= 2 {
        let (len, header) = match bytes[1] & 0x7f {
            126 if bytes.len() >= 4 => (u64::from(u16::from_be_bytes([bytes[2], bytes[3]])), 4),
            127 if bytes.len() >= 10 => (u64::from_be_bytes(bytes[2..10].try_into().unwrap()), 10),
            126 | 127 => return false,
            n => (u64::from(n), 2),
        };
        if len >= BLOCKING_FRAME {
            return true;
        }
        let Some(rest) = usize::try_from(len).ok().and_then(|l| bytes.get(header + l..)) else { return false };
        bytes = rest;
    }
    false
}

#[tokio::test]
async fn peers_that_stop_reading_are_closed_after_two_ping_intervals() {
    let server = TestServer::start_with(slow_reader_settings(PING)).await;
    let rid = fill_room(&server).await;
    let mut stuck = Vec::new();
    for i in 0..3 {
        stuck.push(stuck_client(&server, &rid, &token(&format!("stuck-{i}"), "LAB")).await);
    }
    // Two ping intervals, then at most one more to notice (and slack for a loaded machine).
    wait_until("the stuck clients to be closed", PING * 3 + Duration::from_secs(5), || {
        server.stats.open_connections() == 0
    })
    .await;
    drop(stuck);
    server.stop().await;
}

#[tokio::test]
async fn a_peer_that_talks_but_accepts_no_bytes_is_closed_by_the_write_deadline() {
    let server = TestServer::start_with(slow_reader_settings(PING)).await;
    let rid = fill_room(&server).await;
    let mut ws = stuck_client(&server, &rid, &token("talker", "LAB")).await;
    wait_until("the client to be open", Duration::from_secs(5), || server.stats.open_connections() == 1).await;
    // It keeps the connection busy (so it is never silent) but never reads.
    let talk = async {
        loop {
            if ws.send(Message::Ping(Bytes::from_static(b"hi"))).await.is_err() {
                break;
            }
            tokio::time::sleep(PING / 4).await;
        }
    };
    let closed = async {
        wait_until("the talker to be closed", PING * 3 + Duration::from_secs(3), || {
            server.stats.open_connections() == 0
        })
        .await;
    };
    tokio::select! {
        () = closed => {}
        () = talk => {}
    }
    assert_eq!(server.stats.open_connections(), 0);
    server.stop().await;
}

#[tokio::test]
async fn token_expiry_is_enforced_while_a_write_is_pending() {
    // Pings far apart: only the expiry can close these connections.
    let server = TestServer::start_with(slow_reader_settings(Duration::from_secs(60))).await;
    let rid = fill_room(&server).await;
    let short = sign(&json!({"sub": "brief", "role": "LAB", "exp": now_secs() + 2}));
    let stuck = stuck_client(&server, &rid, &short).await;
    wait_until("the client to be open", Duration::from_secs(5), || server.stats.open_connections() == 1).await;
    wait_until("the expired client to be closed", Duration::from_secs(8), || server.stats.open_connections() == 0)
        .await;
    drop(stuck);
    server.stop().await;
}

#[tokio::test]
async fn shutdown_does_not_wait_its_grace_for_peers_that_stop_reading() {
    let mut s = slow_reader_settings(Duration::from_secs(60));
    s.ws.shutdown_grace = Duration::from_secs(15);
    let server = TestServer::start_with(s).await;
    let rid = fill_room(&server).await;
    let mut stuck = Vec::new();
    for i in 0..3 {
        stuck.push(stuck_client(&server, &rid, &token(&format!("stuck-{i}"), "LAB")).await);
    }
    wait_until("the stuck clients to be open", Duration::from_secs(5), || server.stats.open_connections() == 3).await;
    // Each server write to them is pending before the shutdown begins.
    for ws in &stuck {
        wait_for_a_blocked_write(ws, Duration::from_secs(10)).await;
    }
    let took = server.stop().await;
    assert!(took < Duration::from_secs(10), "shutdown took {took:?} of its 15 s grace");
    drop(stuck);
}

/// A server with a small rate (5 frames/s, burst 2) and a short closing delay (1 s).
async fn rate_limited_server() -> (TestServer, String) {
    let mut s = settings();
    s.ws.rate_per_second = 5.0;
    s.ws.rate_burst = 2.0;
    s.ws.rate_close_after = Duration::from_secs(1);
    let server = TestServer::start_with(s).await;
    let rid = server.add_request("t").await.to_hex();
    (server, rid)
}

#[tokio::test]
async fn a_client_that_honours_retry_after_is_never_closed() {
    let (server, rid) = rate_limited_server().await;
    let mut c = Client::connect(&server.url(), &token("polite", "LAB")).await;
    let (mut acks, mut refusals) = (0, 0);
    let started = Instant::now();
    // Three times the closing delay, sending as fast as the server allows.
    while started.elapsed() < Duration::from_secs(3) {
        c.send(json!({"event": "leaveRoom", "data": {"requestId": rid}, "id": acks})).await;
        let reply = c.recv().await;
        match (reply["event"].as_str(), reply["data"]["code"].as_str()) {
            (Some("ack"), _) => acks += 1,
            (Some("error"), Some("RATE_LIMITED")) => {
                refusals += 1;
                let wait = reply["data"]["retryAfterMs"].as_u64().unwrap();
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
            _ => panic!("unexpected {reply}"),
        }
    }
    assert!(refusals >= 5, "the client was refused {refusals} times: the test needs refusals to mean anything");
    assert!(acks >= 10, "{acks} frames admitted");
    // Still open and served.
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.ok("leaveRoom", json!({"requestId": rid})).await;
}

#[tokio::test]
async fn a_client_that_keeps_sending_while_refused_is_closed_with_1008() {
    let (server, rid) = rate_limited_server().await;
    let mut c = Client::connect(&server.url(), &token("flooder", "LAB")).await;
    let frame = json!({"event": "leaveRoom", "data": {"requestId": rid}}).to_string();
    let code = flood(&mut c.ws, || Message::text(frame.clone())).await;
    assert_eq!(code, Some(1008));
}

#[tokio::test]
async fn a_client_pinging_in_a_loop_is_closed_with_1008() {
    let (server, _) = rate_limited_server().await;
    let mut c = Client::connect(&server.url(), &token("pinger", "LAB")).await;
    let code = flood(&mut c.ws, || Message::Ping(Bytes::from_static(b"p"))).await;
    assert_eq!(code, Some(1008));
}

#[tokio::test]
async fn a_client_sending_empty_continuation_frames_in_a_loop_is_closed_with_1008() {
    let (server, _) = rate_limited_server().await;
    let mut c = Client::connect(&server.url(), &token("fragments", "LAB")).await;
    // A message that never ends: its first fragment, then empty continuations.
    let first = Frame::message(Bytes::from_static(b"{"), OpCode::Data(Data::Text), false);
    c.ws.send(Message::Frame(first)).await.unwrap();
    let code =
        flood(&mut c.ws, || Message::Frame(Frame::message(Bytes::new(), OpCode::Data(Data::Continue), false))).await;
    assert_eq!(code, Some(1008));
}

/// Sends `frame()` every 5 ms while reading, until the server closes (its close code), or 6 s.
async fn flood(ws: &mut Ws, frame: impl Fn() -> Message) -> Option<u16> {
    let deadline = Instant::now() + Duration::from_secs(6);
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => return None,
            msg = ws.next() => match msg {
                Some(Ok(Message::Close(f))) => return Some(f.map_or(1005, |f| u16::from(f.code))),
                Some(Ok(_)) => {}
                other => panic!("connection ended without a close frame: {other:?}"),
            },
            _ = tick.tick() => {
                if let Err(e) = ws.send(frame()).await {
                    panic!("send failed before a close frame: {e}");
                }
            }
        }
    }
}

#[tokio::test]
async fn a_server_close_reaches_a_client_with_frames_in_flight() {
    let server = TestServer::start().await;
    let rid = server.add_request("t").await.to_hex();
    let filler = json!({"event": "leaveRoom", "data": {"requestId": rid}, "id": "x".repeat(100)}).to_string();
    for round in 0..12 {
        let mut c = Client::connect(&server.url(), &token("lab", "LAB")).await;
        let refresh = json!({"event": "refreshToken", "data": {"token": token("someone-else", "LAB")}, "id": "r"});
        c.send(refresh).await;
        // The client goes on sending (as a busy client would, not yet knowing) while it reads.
        let (mut tx, mut rx) = c.ws.split();
        let mut frames = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        let code = loop {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => panic!("round {round}: no close within 5 s"),
                msg = rx.next() => match msg {
                    Some(Ok(Message::Text(t))) => frames.push(serde_json::from_str::<Value>(&t).unwrap()),
                    Some(Ok(Message::Close(f))) => break f.map_or(1005, |f| u16::from(f.code)),
                    Some(Ok(_)) => {}
                    other => panic!("round {round}: the connection failed before its close frame: {other:?}"),
                },
                res = async {
                    for _ in 0..10 {
                        tx.feed(Message::text(filler.clone())).await?;
                    }
                    tx.flush().await
                } => if let Err(e) = res {
                    panic!("round {round}: sending failed before the close frame: {e}");
                },
            }
        };
        assert_eq!(code, 4003, "round {round}");
        let codes: Vec<_> = frames.iter().map(|f| f["data"]["code"].as_str()).collect();
        assert_eq!(codes, [Some("FORBIDDEN")], "round {round}: {frames:?}");
    }
}

/// A text frame carrying `payload` as is.
fn raw_text(payload: &'static [u8]) -> Frame {
    Frame::message(Bytes::from_static(payload), OpCode::Data(Data::Text), true)
}

#[tokio::test]
async fn invalid_utf8_in_a_text_frame_closes_with_1007() {
    let server = TestServer::start().await;
    let mut c = Client::connect(&server.url(), &token("lab", "LAB")).await;
    c.ws.send(Message::Frame(raw_text(b"{\"event\":\"\xff\xfe\"}"))).await.unwrap();
    assert_eq!(c.expect_close().await, 1007);
}

#[tokio::test]
async fn a_websocket_protocol_error_closes_with_1002() {
    let server = TestServer::start().await;
    // A reserved bit set without an extension.
    let mut c = Client::connect(&server.url(), &token("lab", "LAB")).await;
    let mut frame = raw_text(b"{}");
    frame.header_mut().rsv1 = true;
    c.ws.send(Message::Frame(frame)).await.unwrap();
    assert_eq!(c.expect_close().await, 1002);
    // A continuation frame with nothing to continue.
    let mut c = Client::connect(&server.url(), &token("lab", "LAB")).await;
    let frame = Frame::message(Bytes::from_static(b"{}"), OpCode::Data(Data::Continue), true);
    c.ws.send(Message::Frame(frame)).await.unwrap();
    assert_eq!(c.expect_close().await, 1002);
}
