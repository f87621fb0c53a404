//! What a connection sends: its bounded outbound queue of encoded frames, the room sink that
//! fills it from broadcasts, and the write side that moves frames to the peer without ever
//! waiting for it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use futures_util::{Sink, SinkExt};
use labchat_core::{Published, RoomSink, SinkId};
use labchat_domain::{RequestId, RoomEvent, Seq};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{Message as WsMessage, Utf8Bytes};

use crate::protocol::{self, ErrorFrame, ServerEvent};

/// A FIFO of encoded frames that allocates nothing while empty (a tokio mpsc channel allocates
/// about 1.5 KiB per connection up front) and gives back what a burst took.
struct OutQueue {
    frames: std::sync::Mutex<VecDeque<Utf8Bytes>>,
    ready: AtomicWaker,
    max_frames: usize,
}

impl OutQueue {
    fn new(max_frames: usize) -> Self {
        Self {
            frames: std::sync::Mutex::new(VecDeque::new()),
            ready: AtomicWaker::new(),
            max_frames: max_frames.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Utf8Bytes>> {
        self.frames.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn try_send(&self, frame: Utf8Bytes) -> Result<(), Utf8Bytes> {
        {
            let mut q = self.lock();
            if q.len() >= self.max_frames {
                return Err(frame);
            }
            q.push_back(frame);
        }
        self.ready.wake();
        Ok(())
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    fn try_recv(&self) -> Option<Utf8Bytes> {
        let mut q = self.lock();
        let frame = q.pop_front();
        if frame.is_none() && q.capacity() > 16 {
            *q = VecDeque::new();
        }
        frame
    }

    /// The next frame, or `Pending` with the task woken by the next push. Cancel-safe.
    fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Utf8Bytes> {
        if let Some(frame) = self.try_recv() {
            return Poll::Ready(frame);
        }
        self.ready.register(cx.waker());
        // A push between the first look and the registration would otherwise be missed.
        self.try_recv().map_or(Poll::Pending, Poll::Ready)
    }
}

/// The connection's side of the broadcaster, and the queue of its direct replies: a bounded
/// queue of encoded frames. Over either bound the connection is marked for closing (1013).
///
/// While a room is being joined its events are held back (see [`ConnSink::hold`]); held frames
/// count toward the same bounds.
pub(crate) struct ConnSink {
    id: SinkId,
    tx: OutQueue,
    queued_bytes: AtomicUsize,
    max_bytes: usize,
    overflowed: AtomicBool,
    overflow: Notify,
    /// Whether `window` holds anything: deliveries look at it before taking the lock.
    watching: AtomicBool,
    window: std::sync::Mutex<JoinWindow>,
}

/// What a connection's joins hold back or filter out of its room events.
#[derive(Default)]
struct JoinWindow {
    /// The room being joined, and its events delivered since, in order.
    held: Option<(RequestId, Vec<Held>)>,
    /// Rooms joined whose history covered their messages up to a seq: a message of the room
    /// up to that seq that arrives late (from another node) is already in the history and is
    /// dropped. The entry goes with the first message past it.
    covered: Vec<(RequestId, Seq)>,
}

impl JoinWindow {
    fn is_idle(&self) -> bool {
        self.held.is_none() && self.covered.is_empty()
    }
}

/// A room event held back during a join: its seq (messages only) and its encoded frame, whose
/// bytes are already counted in the queue's bytes.
struct Held {
    seq: Option<Seq>,
    frame: Utf8Bytes,
}

/// The seq of a message event; `None` for receipts.
fn seq_of(event: &RoomEvent) -> Option<Seq> {
    match event {
        RoomEvent::MessagePosted(m) => m.seq,
        _ => None,
    }
}

/// How the events held during a join end (see [`ConnSink::release`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Release {
    /// The join succeeded and the history page was queued: pass on the receipts, and the
    /// messages past `covered` unless the page was `cut` short of the room's newest message (the
    /// client pages on with `history {after}`). With `late`, messages up to `covered` that
    /// arrive afterwards are dropped too, until one past it arrives.
    Joined {
        /// The highest seq the history covers.
        covered: Option<Seq>,
        /// The page stops before the room's newest message.
        cut: bool,
        /// Messages may arrive late, after the history that holds them (from other nodes, through
        /// a backplane); without one the filter is not needed.
        late: bool,
    },
    /// The join failed and the sink was a member before: pass everything on, as live events.
    Member,
    /// The join failed and the sink is not a member: drop everything.
    Drop,
}

impl ConnSink {
    /// An empty sink holding at most `max_frames` frames and `max_bytes` bytes.
    pub(crate) fn new(id: SinkId, max_frames: usize, max_bytes: usize) -> Self {
        Self {
            id,
            tx: OutQueue::new(max_frames),
            queued_bytes: AtomicUsize::new(0),
            max_bytes,
            overflowed: AtomicBool::new(false),
            overflow: Notify::new(),
            watching: AtomicBool::new(false),
            window: std::sync::Mutex::new(JoinWindow::default()),
        }
    }

    fn window(&self) -> std::sync::MutexGuard<'_, JoinWindow> {
        self.window.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn mark_overflowed(&self) {
        self.overflowed.store(true, Ordering::Release);
        self.overflow.notify_one();
    }

    /// Starts holding back the events of `room`, before subscribing to it: until
    /// [`ConnSink::release`], they wait instead of being queued. One room at a time (a
    /// connection runs one command at a time); holding another room releases nothing and
    /// drops what the previous one held.
    pub(crate) fn hold(&self, room: RequestId) {
        let mut w = self.window();
        if let Some((_, held)) = w.held.take() {
            self.discard(held);
        }
        w.held = Some((room, Vec::new()));
        self.watching.store(true, Ordering::Release);
    }

    /// Ends holding `room`'s events, as `how` says, right after its history was queued: the
    /// events passed on are queued in the order they arrived, before any later event.
    pub(crate) fn release(&self, room: RequestId, how: Release) {
        let mut w = self.window();
        let held = match w.held.take() {
            Some((r, held)) if r == room => held,
            other => {
                w.held = other;
                return;
            }
        };
        w.covered.retain(|(r, _)| *r != room);
        let (mut covered, late) = match how {
            Release::Joined { covered, late, .. } => (covered, late),
            Release::Member | Release::Drop => (None, false),
        };
        for h in held {
            let pass = match (how, h.seq) {
                (Release::Drop, _) => false,
                (Release::Member, _) | (Release::Joined { .. }, None) => true,
                (Release::Joined { cut, .. }, Some(seq)) => !cut && covered.is_none_or(|c| seq > c),
            };
            if pass {
                if h.seq.is_some() {
                    // A later message is past the history: nothing late can follow it.
                    covered = None;
                }
                self.queue_counted(h.frame);
            } else {
                self.queued_bytes.fetch_sub(h.frame.len(), Ordering::AcqRel);
            }
        }
        if let Some(c) = covered.filter(|_| late) {
            w.covered.push((room, c));
        }
        self.watching.store(!w.is_idle(), Ordering::Release);
    }

    /// Forgets what the joins of `room` left to filter (on leaving it).
    pub(crate) fn forget(&self, room: RequestId) {
        if !self.watching.load(Ordering::Acquire) {
            return;
        }
        let mut w = self.window();
        w.covered.retain(|(r, _)| *r != room);
        self.watching.store(!w.is_idle(), Ordering::Release);
    }

    fn discard(&self, held: Vec<Held>) {
        let bytes: usize = held.iter().map(|h| h.frame.len()).sum();
        self.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// Queues a frame whose bytes are already counted.
    fn queue_counted(&self, frame: Utf8Bytes) {
        if self.overflowed.load(Ordering::Relaxed) {
            self.queued_bytes.fetch_sub(frame.len(), Ordering::AcqRel);
            return;
        }
        if let Err(frame) = self.tx.try_send(frame) {
            self.queued_bytes.fetch_sub(frame.len(), Ordering::AcqRel);
            self.mark_overflowed();
        }
    }

    /// Delivers a room event while a join window is open: holds it, drops it as already in a
    /// history, or queues it.
    fn deliver_watched(&self, event: &RoomEvent, frame: Utf8Bytes) {
        let room = event.request_id();
        let seq = seq_of(event);
        let mut w = self.window();
        if let Some((r, held)) = &mut w.held
            && *r == room
        {
            if self.overflowed.load(Ordering::Relaxed) {
                return;
            }
            let len = frame.len();
            let queued = self.queued_bytes.fetch_add(len, Ordering::AcqRel) + len;
            if queued > self.max_bytes || held.len() + self.tx.len() >= self.tx.max_frames {
                self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
                self.mark_overflowed();
                return;
            }
            held.push(Held { seq, frame });
            return;
        }
        if let Some(seq) = seq
            && let Some(i) = w.covered.iter().position(|(r, _)| *r == room)
        {
            if w.covered[i].1 >= seq {
                return;
            }
            w.covered.swap_remove(i);
            self.watching.store(!w.is_idle(), Ordering::Release);
        }
        // Queued under the window's lock, so that it follows whatever a release queues.
        self.push(frame);
    }

    /// The connection's number, as the broadcaster knows it.
    pub(crate) fn sink_id(&self) -> SinkId {
        self.id
    }

    /// Queues a frame; on overflow marks the connection for closing (1013) and drops the frame.
    pub(crate) fn push(&self, frame: Utf8Bytes) {
        if self.overflowed.load(Ordering::Relaxed) {
            return;
        }
        let len = frame.len();
        let queued = self.queued_bytes.fetch_add(len, Ordering::AcqRel) + len;
        let full = queued > self.max_bytes || self.tx.try_send(frame).is_err();
        if full {
            self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            self.mark_overflowed();
        }
    }

    /// Completes once the queue has overflowed.
    pub(crate) async fn overflowed(&self) {
        if self.overflowed.load(Ordering::Acquire) {
            return;
        }
        self.overflow.notified().await;
    }

    /// Takes the next queued frame, if any.
    pub(crate) fn try_take(&self) -> Option<Utf8Bytes> {
        let frame = self.tx.try_recv()?;
        self.queued_bytes.fetch_sub(frame.len(), Ordering::AcqRel);
        Some(frame)
    }

    /// Takes the next queued frame, or registers the task to be woken by the next one.
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>) -> Poll<Utf8Bytes> {
        self.tx.poll_recv(cx).map(|frame| {
            self.queued_bytes.fetch_sub(frame.len(), Ordering::AcqRel);
            frame
        })
    }

    /// Queues a direct reply (not a room broadcast: those are counted by the broadcaster).
    pub(crate) fn reply(&self, event: ServerEvent, frame: String) {
        metrics::counter!("labchat_frames_out_total", "event" => event.as_str()).increment(1);
        self.push(Utf8Bytes::from(frame));
    }

    /// Queues an `error` frame.
    pub(crate) fn reply_error(&self, e: &ErrorFrame<'_>) {
        metrics::counter!("labchat_errors_total", "code" => e.code.as_str()).increment(1);
        self.reply(ServerEvent::Error, protocol::error(e));
    }
}

impl RoomSink for ConnSink {
    fn id(&self) -> SinkId {
        self.id
    }

    fn deliver(&self, event: Arc<Published>) {
        // Encoded once per broadcast, shared by every receiver.
        let frame = event.encoded(|e| Utf8Bytes::from(protocol::room_event(e)));
        if self.watching.load(Ordering::Acquire) {
            self.deliver_watched(event.event(), frame);
        } else {
            self.push(frame);
        }
    }
}

/// Most frames handed to the websocket in one poll, so a busy room cannot starve reading.
const FRAMES_PER_POLL: usize = 256;

/// The write side of a connection between polls: whether a ping is due, whether a write is
/// pending, and the write deadline's watch on the peer's byte count.
#[derive(Debug)]
pub(crate) struct Writing {
    /// A ping is to be sent as soon as the peer takes bytes again.
    pub(crate) ping_due: bool,
    /// Frames were handed to the websocket and not yet flushed: a write is pending.
    unflushed: bool,
    /// The peer's byte count at the last check, and when it last moved (or nothing was pending).
    watched: u64,
    progress_at: Instant,
    /// Frames written so far.
    pub(crate) frames_out: u64,
}

impl Writing {
    /// Nothing pending, as of `now`.
    pub(crate) fn new(now: Instant) -> Self {
        Self { ping_due: false, unflushed: false, watched: 0, progress_at: now, frames_out: 0 }
    }

    /// Moves queued frames (and a due ping) to the websocket as far as the peer takes them, and
    /// flushes at the end of a batch; never waits for the peer. `Err` means writing failed.
    /// Returns with the task registered to be woken when the peer takes bytes or a frame is
    /// queued, whichever it waits for.
    pub(crate) fn poll_write<S>(&mut self, cx: &mut Context<'_>, ws: &mut S, sink: &ConnSink) -> Result<(), S::Error>
    where
        S: Sink<WsMessage> + Unpin,
    {
        let mut moved = 0;
        loop {
            match ws.poll_ready_unpin(cx) {
                Poll::Pending => return Ok(()),
                Poll::Ready(res) => res?,
            }
            let msg = if self.ping_due {
                self.ping_due = false;
                WsMessage::Ping(Default::default())
            } else if moved >= FRAMES_PER_POLL {
                // Come back after reading.
                cx.waker().wake_by_ref();
                return Ok(());
            } else if let Poll::Ready(frame) = sink.poll_take(cx) {
                moved += 1;
                self.frames_out += 1;
                WsMessage::Text(frame)
            } else if self.unflushed {
                if let Poll::Ready(res) = ws.poll_flush_unpin(cx) {
                    res?;
                    self.unflushed = false;
                }
                return Ok(());
            } else {
                return Ok(());
            };
            ws.start_send_unpin(msg)?;
            self.unflushed = true;
        }
    }

    /// Whether a write has been pending with no byte accepted for `limit`, given the peer's
    /// byte count `written` at `now`. Called at every ping tick.
    pub(crate) fn stalled(&mut self, written: u64, now: Instant, limit: Duration) -> bool {
        if !self.unflushed || written != self.watched {
            self.watched = written;
            self.progress_at = now;
            return false;
        }
        now.saturating_duration_since(self.progress_at) >= limit
    }
}

#[cfg(test)]
mod tests {
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

    fn room(n: u8) -> RequestId {
        RequestId::parse(&format!("{n:02x}").repeat(12)).unwrap()
    }

    fn posted(r: RequestId, seq: u64) -> Arc<Published> {
        Published::new(RoomEvent::MessagePosted(labchat_domain::Message {
            id: labchat_domain::MessageId::parse(&format!("{seq:024x}")).unwrap(),
            request_id: r,
            seq: Some(Seq::new(seq).unwrap()),
            sender_id: labchat_domain::UserId::parse("u").unwrap(),
            sender_role: labchat_domain::Role::Lab,
            text: labchat_domain::MessageText::parse("m".to_owned(), 10).unwrap(),
            created_at: labchat_domain::Timestamp::from_unix_millis(1),
            client_message_id: None,
            delivered_to: vec![],
            read_by: vec![],
        }))
    }

    fn read(r: RequestId) -> Arc<Published> {
        Published::new(RoomEvent::Read {
            request_id: r,
            user_id: labchat_domain::UserId::parse("u").unwrap(),
            messages: vec![labchat_domain::MessageId::parse(&format!("{:024x}", 1)).unwrap()],
            at: labchat_domain::Timestamp::from_unix_millis(1),
        })
    }

    /// The queued frames, as (event, seq) pairs.
    fn drained(sink: &ConnSink) -> Vec<(String, Option<u64>)> {
        std::iter::from_fn(|| sink.try_take())
            .map(|f| {
                let v: serde_json::Value = serde_json::from_str(f.as_str()).unwrap();
                (v["event"].as_str().unwrap().to_owned(), v["data"]["seq"].as_u64())
            })
            .collect()
    }

    #[test]
    fn held_events_follow_the_history_past_what_it_covers_and_late_ones_are_dropped() {
        let (a, b) = (room(1), room(2));
        let sink = ConnSink::new(SinkId(1), 64, 1 << 20);
        sink.hold(a);
        for e in [posted(a, 4), read(a), posted(b, 9), posted(a, 5), posted(a, 6)] {
            sink.deliver(e);
        }
        assert_eq!(drained(&sink), [("message".to_owned(), Some(9))], "only the other room's event passed");
        assert!(sink.queued_bytes.load(Ordering::Relaxed) > 0, "held frames count toward the bound");
        sink.push(frame(r#"{"event":"roomHistory"}"#));
        sink.release(a, Release::Joined { covered: Some(Seq::new(5).unwrap()), cut: false, late: true });
        let got = drained(&sink);
        let names: Vec<_> = got.iter().map(|(e, s)| (e.as_str(), *s)).collect();
        assert_eq!(names, [("roomHistory", None), ("messageReads", None), ("message", Some(6))]);
        assert_eq!(sink.queued_bytes.load(Ordering::Relaxed), 0);
        assert!(!sink.watching.load(Ordering::Relaxed), "a message past the history ends the filter");
    }

    #[test]
    fn a_late_message_already_in_the_history_is_dropped_until_one_past_it() {
        let a = room(1);
        let sink = ConnSink::new(SinkId(1), 64, 1 << 20);
        sink.hold(a);
        sink.release(a, Release::Joined { covered: Some(Seq::new(3).unwrap()), cut: false, late: true });
        for seq in [2, 3, 4, 3] {
            sink.deliver(posted(a, seq));
        }
        let seqs: Vec<_> = drained(&sink).into_iter().map(|(_, s)| s).collect();
        assert_eq!(seqs, [Some(4), Some(3)], "filtered until seq 4 passed, then nothing is filtered");
    }

    #[test]
    fn without_late_deliveries_a_join_leaves_no_filter_behind() {
        let a = room(1);
        let sink = ConnSink::new(SinkId(1), 64, 1 << 20);
        sink.hold(a);
        sink.release(a, Release::Joined { covered: Some(Seq::new(3).unwrap()), cut: false, late: false });
        assert!(!sink.watching.load(Ordering::Relaxed), "deliveries go straight to the queue again");
        sink.deliver(posted(a, 4));
        assert_eq!(drained(&sink).len(), 1);
    }

    #[test]
    fn a_cut_page_releases_held_receipts_only_and_a_failed_join_as_told() {
        let a = room(1);
        let sink = ConnSink::new(SinkId(1), 64, 1 << 20);
        sink.hold(a);
        sink.deliver(posted(a, 8));
        sink.deliver(read(a));
        sink.release(a, Release::Joined { covered: Some(Seq::new(5).unwrap()), cut: true, late: true });
        assert_eq!(drained(&sink), [("messageReads".to_owned(), None)]);
        for (how, want) in [(Release::Drop, 0), (Release::Member, 2)] {
            sink.hold(a);
            sink.deliver(posted(a, 20));
            sink.deliver(read(a));
            sink.release(a, how);
            assert_eq!(drained(&sink).len(), want, "{how:?}");
        }
        assert_eq!(sink.queued_bytes.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn held_events_over_the_bound_overflow() {
        let a = room(1);
        let sink = ConnSink::new(SinkId(1), 3, 1 << 20);
        sink.push(frame("x"));
        sink.hold(a);
        for seq in 1..=3 {
            sink.deliver(posted(a, seq));
        }
        assert!(
            sink.overflowed.load(Ordering::Relaxed),
            "1 queued and 2 held fill the 3-frame bound: a third held one overflows"
        );
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
}
