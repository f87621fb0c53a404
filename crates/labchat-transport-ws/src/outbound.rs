//! What a connection sends: its bounded outbound queue of encoded frames, the room sink that
//! fills it from broadcasts, and a byte count of what the peer has accepted.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use labchat_core::{Published, RoomSink, SinkId};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::protocol::{self, ErrorFrame};

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
pub(crate) struct ConnSink {
    id: SinkId,
    tx: OutQueue,
    queued_bytes: AtomicUsize,
    max_bytes: usize,
    overflowed: AtomicBool,
    overflow: Notify,
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
        }
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
            self.overflowed.store(true, Ordering::Release);
            self.overflow.notify_one();
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

    /// The next queued frame, waiting for one. Cancel-safe.
    pub(crate) async fn take(&self) -> Utf8Bytes {
        std::future::poll_fn(|cx| self.poll_take(cx)).await
    }

    /// Takes the next queued frame, or registers the task to be woken by the next one.
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>) -> Poll<Utf8Bytes> {
        self.tx.poll_recv(cx).map(|frame| {
            self.queued_bytes.fetch_sub(frame.len(), Ordering::AcqRel);
            frame
        })
    }

    /// Queues a direct reply (not a room broadcast: those are counted by the broadcaster).
    pub(crate) fn reply(&self, event: &'static str, frame: String) {
        metrics::counter!("labchat_frames_out_total", "event" => event).increment(1);
        self.push(Utf8Bytes::from(frame));
    }

    /// Queues an `error` frame.
    pub(crate) fn reply_error(&self, e: &ErrorFrame<'_>) {
        metrics::counter!("labchat_errors_total", "code" => e.code.as_str()).increment(1);
        self.reply("error", protocol::error(e));
    }
}

impl RoomSink for ConnSink {
    fn id(&self) -> SinkId {
        self.id
    }

    fn deliver(&self, event: Arc<Published>) {
        // Encoded once per broadcast, shared by every receiver.
        let frame = event.encoded(|e| Utf8Bytes::from(protocol::room_event(e)));
        self.push(frame);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

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
}
