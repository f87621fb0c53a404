//! What a connection sends: its bounded outbound queue of encoded frames, the room sink that
//! fills it from broadcasts, and the write side that moves frames to the peer without ever
//! waiting for it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::SinkExt;
use futures_util::task::AtomicWaker;
use labchat_core::{InboxSink, Published, RoomSink, SinkId};
use labchat_domain::{InboxRow, UserId};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::Error as WsError;
use tokio_tungstenite::tungstenite::{Message as WsMessage, Utf8Bytes};

use crate::metered::Metered;
use crate::protocol::{self, ErrorFrame, ServerEvent};

mod window;

use window::JoinWindow;
pub(crate) use window::Release;

/// A FIFO of encoded frames that allocates nothing while empty (a tokio mpsc channel allocates
/// about 1.5 KiB per connection up front) and gives back what a burst took as soon as it is
/// empty again.
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
        if frame.is_none() && q.capacity() > 0 {
            *q = VecDeque::new();
        }
        frame
    }

    /// The first `max` frames at most, taken in one go (the queue's own memory when it holds no
    /// more, so nothing is copied), or `Pending` with the task woken by the next push.
    fn poll_recv_batch(&self, cx: &mut Context<'_>, max: usize) -> Poll<VecDeque<Utf8Bytes>> {
        let take = |q: &mut VecDeque<Utf8Bytes>| match q.len() {
            0 => None,
            n if n <= max => Some(std::mem::take(q)),
            _ => Some(q.drain(..max).collect()),
        };
        if let Some(batch) = take(&mut self.lock()) {
            return Poll::Ready(batch);
        }
        self.ready.register(cx.waker());
        // A push between the first look and the registration would otherwise be missed.
        take(&mut self.lock()).map_or(Poll::Pending, Poll::Ready)
    }
}

/// The connection's side of the broadcaster, and the queue of its direct replies: a bounded
/// queue of encoded frames. Over either bound the connection is marked for closing (1013).
///
/// While a room is being joined its events are held back (see [`ConnSink::hold`]); held frames
/// count toward the same bounds.
pub(crate) struct ConnSink {
    id: SinkId,
    /// The connection's user: the events about them that they are not told are dropped.
    user: Option<UserId>,
    tx: OutQueue,
    queued_bytes: AtomicUsize,
    max_bytes: usize,
    overflowed: AtomicBool,
    overflow: Notify,
    /// Whether `window` holds anything: deliveries look at it before taking the lock.
    watching: AtomicBool,
    window: std::sync::Mutex<JoinWindow>,
}

impl ConnSink {
    /// An empty sink holding at most `max_frames` frames and `max_bytes` bytes.
    pub(crate) fn new(id: SinkId, max_frames: usize, max_bytes: usize) -> Self {
        Self {
            id,
            user: None,
            tx: OutQueue::new(max_frames),
            queued_bytes: AtomicUsize::new(0),
            max_bytes,
            overflowed: AtomicBool::new(false),
            overflow: Notify::new(),
            watching: AtomicBool::new(false),
            window: std::sync::Mutex::new(JoinWindow::default()),
        }
    }

    /// The same sink, dropping the events hidden from `user` (`RoomEvent::hidden_from`).
    pub(crate) fn for_user(mut self, user: UserId) -> Self {
        self.user = Some(user);
        self
    }

    fn mark_overflowed(&self) {
        self.overflowed.store(true, Ordering::Release);
        self.overflow.notify_one();
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

    /// Takes the first `max` queued frames at most, or registers the task to be woken by the
    /// next one.
    pub(crate) fn poll_take_batch(&self, cx: &mut Context<'_>, max: usize) -> Poll<VecDeque<Utf8Bytes>> {
        self.tx.poll_recv_batch(cx, max).map(|batch| {
            let bytes = batch.iter().map(|f| f.len()).sum();
            self.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
            batch
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
        if event.event().hidden_from().is_some_and(|u| self.user.as_ref() == Some(u)) {
            return;
        }
        // Encoded once per broadcast, shared by every receiver.
        let frame = event.encoded(|e| Utf8Bytes::from(protocol::room_event(e)));
        if self.watching.load(Ordering::Acquire) {
            self.deliver_watched(event.event(), frame);
        } else {
            self.push(frame);
        }
    }
}

impl InboxSink for ConnSink {
    fn id(&self) -> SinkId {
        self.id
    }

    fn deliver_inbox(&self, row: Arc<InboxRow>) {
        self.reply(ServerEvent::InboxUpdate, protocol::inbox_update(&row));
    }
}

/// Most frames moved to the socket in one poll, so a busy room cannot starve reading.
const FRAMES_PER_POLL: usize = 256;

/// The write side of a connection between polls: whether a ping is due, whether a write is
/// pending, and the write deadline's watch on the peer's byte count.
#[derive(Debug)]
pub(crate) struct Writing {
    /// A ping is to be sent as soon as the peer takes bytes again.
    pub(crate) ping_due: bool,
    /// Bytes wait for the peer: a write is pending.
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

    /// Moves queued frames (and a due ping) to the peer as far as it takes them; never waits
    /// for it. `Err` means writing failed. Returns with the task registered to be woken when
    /// the peer takes bytes or a frame is queued, whichever it waits for.
    ///
    /// Every frame queued when the task wakes is taken from the queue at once and goes out in one
    /// vectored write (up to
    /// [`FRAMES_PER_POLL`] frames, [`crate::wire::MAX_SLICES`] buffers per syscall), straight
    /// from the queued bytes: no write buffer grows to the size of a burst or of a large reply
    /// and stays so. The websocket library writes only control frames (pings, pongs, the
    /// close), each flushed before new text frames go out, so the two never interleave.
    pub(crate) fn poll_write<S>(
        &mut self,
        cx: &mut Context<'_>,
        ws: &mut WebSocketStream<Metered<S>>,
        sink: &ConnSink,
    ) -> Result<(), Box<WsError>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        loop {
            // Frames already on their way first, then what the library holds.
            let sent = match ws.get_mut().poll_send_wire(cx) {
                Poll::Pending => return Ok(()),
                Poll::Ready(res) => res,
            };
            sent.map_err(|e| Box::new(WsError::Io(e)))?;
            match ws.poll_flush_unpin(cx) {
                Poll::Pending => {
                    self.unflushed = true;
                    return Ok(());
                }
                Poll::Ready(res) => res.map_err(Box::new)?,
            }
            if self.ping_due {
                self.ping_due = false;
                self.unflushed = true;
                ws.start_send_unpin(WsMessage::Ping(Default::default())).map_err(Box::new)?;
                continue;
            }
            // Every frame queued (up to the bound) in one go, handed on without a copy.
            let moved = match sink.poll_take_batch(cx, FRAMES_PER_POLL) {
                Poll::Ready(batch) => {
                    let n = batch.len();
                    ws.get_mut().wire().push_texts(batch);
                    n
                }
                Poll::Pending => 0,
            };
            self.frames_out += moved as u64;
            if moved == 0 {
                self.unflushed = false;
                return Ok(());
            }
            self.unflushed = true;
            if moved == FRAMES_PER_POLL {
                // Write these, then come back after reading.
                if let Poll::Ready(res) = ws.get_mut().poll_send_wire(cx) {
                    res.map_err(|e| Box::new(WsError::Io(e)))?;
                    cx.waker().wake_by_ref();
                }
                return Ok(());
            }
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
mod tests;
