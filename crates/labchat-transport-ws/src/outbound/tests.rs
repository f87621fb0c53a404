//! Tests of the outbound queue and its writer: order, bounds, and how frames reach the socket.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::pin::Pin;

use tokio_tungstenite::WebSocketStream;

use super::*;

fn frame(s: &str) -> Utf8Bytes {
    Utf8Bytes::from(s.to_owned())
}

#[test]
fn frames_come_out_in_order_and_the_byte_count_follows() {
    let sink = ConnSink::new(SinkId(1), 8, 1024);
    sink.push(frame("a"));
    sink.push(frame("bb"));
    assert_eq!(sink.queued_bytes.load(Ordering::Relaxed), 3);
    assert_eq!(sink.try_take().as_deref(), Some("a"));
    assert_eq!(sink.try_take().as_deref(), Some("bb"));
    assert_eq!(sink.try_take(), None);
    assert_eq!(sink.queued_bytes.load(Ordering::Relaxed), 0);
}

#[test]
fn too_many_frames_or_bytes_overflow() {
    let by_frames = ConnSink::new(SinkId(1), 2, 1024);
    for s in ["a", "b", "c"] {
        by_frames.push(frame(s));
    }
    assert!(by_frames.overflowed.load(Ordering::Relaxed));
    let by_bytes = ConnSink::new(SinkId(2), 100, 4);
    by_bytes.push(frame("abc"));
    assert!(!by_bytes.overflowed.load(Ordering::Relaxed));
    by_bytes.push(frame("de"));
    assert!(by_bytes.overflowed.load(Ordering::Relaxed));
    assert_eq!(by_bytes.try_take().as_deref(), Some("abc"));
    assert_eq!(by_bytes.try_take(), None, "the frame over the bound was dropped");
}

/// The server's socket with its inner writes counted: how many, and the largest plain
/// (not vectored) one, which only the websocket library makes.
struct Counted {
    io: tokio::io::DuplexStream,
    writes: usize,
    largest_plain_write: usize,
}

impl tokio::io::AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Counted {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.writes += 1;
        self.largest_plain_write = self.largest_plain_write.max(buf.len());
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.writes += 1;
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

type ServerWs = WebSocketStream<Metered<Counted>>;
type ClientWs = WebSocketStream<tokio::io::DuplexStream>;

/// A real websocket pair over an in-memory pipe holding at most `pipe` bytes each way, the
/// server side configured as connections are.
async fn pair(pipe: usize) -> (ServerWs, ClientWs) {
    use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
    let (a, b) = tokio::io::duplex(pipe);
    let config = WebSocketConfig::default().read_buffer_size(512).write_buffer_size(0);
    let server = Counted { io: a, writes: 0, largest_plain_write: 0 };
    let server = WebSocketStream::from_raw_socket(Metered::new(server), Role::Server, Some(config)).await;
    let client = WebSocketStream::from_raw_socket(b, Role::Client, None).await;
    (server, client)
}

fn noop() -> Context<'static> {
    Context::from_waker(std::task::Waker::noop())
}

async fn next_msg(client: &mut ClientWs) -> WsMessage {
    use futures_util::StreamExt;
    tokio::time::timeout(Duration::from_secs(5), client.next()).await.unwrap().unwrap().unwrap()
}

#[tokio::test]
async fn queued_frames_and_a_due_ping_go_out_in_one_write() {
    let (mut ws, mut client) = pair(64 * 1024).await;
    let sink = ConnSink::new(SinkId(1), 8, 1024);
    let mut w = Writing::new(Instant::now());
    w.ping_due = true;
    w.poll_write(&mut noop(), &mut ws, &sink).unwrap();
    let after_ping = ws.get_ref().get_ref().writes;
    for s in ["a", "bb", "ccc"] {
        sink.push(frame(s));
    }
    w.poll_write(&mut noop(), &mut ws, &sink).unwrap();
    assert_eq!(ws.get_ref().get_ref().writes - after_ping, 1, "three frames, one write");
    assert!(matches!(next_msg(&mut client).await, WsMessage::Ping(_)));
    for s in ["a", "bb", "ccc"] {
        assert!(matches!(next_msg(&mut client).await, WsMessage::Text(t) if t.as_str() == s));
    }
    assert_eq!((w.frames_out, w.ping_due, w.unflushed), (3, false, false));
}

#[tokio::test]
async fn a_peer_that_takes_nothing_never_makes_the_writer_wait() {
    let (mut ws, mut client) = pair(1024).await;
    let sink = ConnSink::new(SinkId(1), 8, 1 << 20);
    let big = "x".repeat(10_000);
    sink.push(frame(&big));
    let mut w = Writing::new(Instant::now());
    w.poll_write(&mut noop(), &mut ws, &sink).unwrap();
    assert!(w.unflushed, "the frame is partly written");
    w.ping_due = true;
    sink.push(frame("a"));
    w.poll_write(&mut noop(), &mut ws, &sink).unwrap();
    assert!(w.ping_due, "the ping waits for the peer");
    assert_eq!(sink.tx.len(), 1, "the next frame stays queued");
    // Once the peer reads, everything arrives whole and in order.
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(next_msg(&mut client).await);
        }
        got
    });
    let mut guard = 0;
    while (w.unflushed || w.ping_due || sink.tx.len() > 0) && guard < 10_000 {
        tokio::task::yield_now().await;
        w.poll_write(&mut noop(), &mut ws, &sink).unwrap();
        guard += 1;
    }
    let got = reader.await.unwrap();
    assert!(matches!(&got[0], WsMessage::Text(t) if t.as_str() == big));
    assert!(matches!(&got[1], WsMessage::Ping(_)));
    assert!(matches!(&got[2], WsMessage::Text(t) if t.as_str() == "a"));
}

/// Writes `frames` to a peer that reads them as they come, and returns what the connection's
/// buffers hold afterwards: the capacity of its outbound queue, of the frames on their way to
/// the socket, and the largest write the websocket library made (its write buffer grows to
/// that and keeps it).
async fn buffers_after(frames: &[String]) -> (usize, usize, usize) {
    let (mut ws, mut client) = pair(16 * 1024).await;
    let sink = ConnSink::new(SinkId(1), 1024, 16 << 20);
    let n = frames.len();
    let expected: Vec<String> = frames.to_vec();
    let reader = tokio::spawn(async move {
        assert!(matches!(next_msg(&mut client).await, WsMessage::Ping(_)));
        for e in expected {
            assert!(matches!(next_msg(&mut client).await, WsMessage::Text(t) if t.as_str() == e));
        }
        client
    });
    for f in frames {
        sink.push(frame(f));
    }
    let mut w = Writing::new(Instant::now());
    w.ping_due = true;
    for _ in 0..100_000 {
        w.poll_write(&mut noop(), &mut ws, &sink).unwrap();
        if !w.unflushed && !w.ping_due && w.frames_out == n as u64 {
            break;
        }
        tokio::task::yield_now().await;
    }
    let _client = reader.await.unwrap();
    (sink.tx.lock().capacity(), ws.get_mut().wire().capacity(), ws.get_ref().get_ref().largest_plain_write)
}

#[tokio::test]
async fn a_large_reply_or_a_burst_leaves_the_buffers_as_an_idle_connection_has_them() {
    let idle = buffers_after(&[]).await;
    assert_eq!(idle.0 + idle.1, 0);
    // A join reply or history page at the reply bound (1 MiB), an inbox page of long rows,
    // and a burst of 600 room events.
    let history = format!(r#"{{"event":"roomHistory","data":{{"messages":["{}"]}}}}"#, "é".repeat(500_000));
    let inbox = format!(r#"{{"event":"ack","data":{{"rooms":["{}"]}}}}"#, "r".repeat(300_000));
    let burst: Vec<String> = (0..600).map(|i| format!(r#"{{"event":"message","data":{{"n":{i}}}}}"#)).collect();
    for frames in [vec![history], vec![inbox], burst] {
        let (queue, wire, largest_library_write) = buffers_after(&frames).await;
        assert_eq!((queue, wire), (0, 0), "the queues' capacity is given back");
        assert!(largest_library_write <= 16, "only control frames go through the library's buffer");
    }
}

#[test]
fn a_write_pending_with_no_byte_accepted_for_the_limit_is_stalled() {
    let t0 = Instant::now();
    let limit = Duration::from_secs(2);
    let second = Duration::from_secs(1);
    let mut w = Writing::new(t0);
    // Nothing pending: never stalled.
    assert!(!w.stalled(0, t0 + 10 * second, limit));
    w.unflushed = true;
    assert!(!w.stalled(0, t0 + 11 * second, limit));
    // Bytes move: not stalled, however long the write has been pending.
    assert!(!w.stalled(100, t0 + 12 * second, limit));
    assert!(!w.stalled(200, t0 + 13 * second, limit));
    // Then none for the limit.
    assert!(!w.stalled(200, t0 + 14 * second, limit));
    assert!(w.stalled(200, t0 + 15 * second, limit));
}
