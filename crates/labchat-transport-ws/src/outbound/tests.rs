#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::pin::Pin;

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

/// A peer that takes `room` frames, then nothing.
#[derive(Default)]
struct Peer {
    room: usize,
    got: Vec<WsMessage>,
    flushes: usize,
}

impl Sink<WsMessage> for Peer {
    type Error = std::convert::Infallible;

    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.room > 0 { Poll::Ready(Ok(())) } else { Poll::Pending }
    }

    fn start_send(mut self: Pin<&mut Self>, item: WsMessage) -> Result<(), Self::Error> {
        self.room -= 1;
        self.got.push(item);
        Ok(())
    }

    fn poll_flush(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.flushes += 1;
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
}

#[test]
fn queued_frames_and_a_due_ping_are_written_then_flushed_once() {
    let sink = ConnSink::new(SinkId(1), 8, 1024);
    sink.push(frame("a"));
    sink.push(frame("b"));
    let mut w = Writing::new(Instant::now());
    w.ping_due = true;
    let mut peer = Peer { room: 10, ..Peer::default() };
    let mut cx = Context::from_waker(std::task::Waker::noop());
    w.poll_write(&mut cx, &mut peer, &sink).unwrap();
    assert!(
        matches!(peer.got.as_slice(), [WsMessage::Ping(_), WsMessage::Text(a), WsMessage::Text(b)] if a.as_str() == "a" && b.as_str() == "b")
    );
    assert_eq!((peer.flushes, w.frames_out, w.ping_due), (1, 2, false));
}

#[test]
fn a_peer_that_takes_nothing_never_makes_the_writer_wait() {
    let sink = ConnSink::new(SinkId(1), 8, 1024);
    sink.push(frame("a"));
    let mut w = Writing::new(Instant::now());
    let mut peer = Peer { room: 0, ..Peer::default() };
    let mut cx = Context::from_waker(std::task::Waker::noop());
    w.ping_due = true;
    w.poll_write(&mut cx, &mut peer, &sink).unwrap();
    assert!(peer.got.is_empty());
    assert!(w.ping_due, "the ping waits for the peer");
    assert_eq!(sink.try_take().as_deref(), Some("a"), "the frame stays queued");
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
