//! A connection's join window: the events of a room being joined, held back between
//! subscribing to the room and queueing its history, and the late copies of messages a history
//! already held, dropped (with several nodes, a message may reach this node after a history
//! read from the shared store already holds it).

use std::sync::atomic::Ordering;

use labchat_domain::{RequestId, RoomEvent, Seq};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::ConnSink;

/// What a connection's joins hold back or filter out of its room events.
#[derive(Default)]
pub(super) struct JoinWindow {
    /// The room being joined, and its events delivered since, in order. Boxed: every
    /// connection has a window, and nearly all of them are idle.
    held: Option<Box<(RequestId, Vec<Held>)>>,
    /// Rooms joined whose history covered their messages up to a seq: a message of the room
    /// up to that seq that arrives late (from another node) is already in the history and is
    /// dropped. The entry goes with the first message past it.
    covered: Vec<(RequestId, Seq)>,
}

impl JoinWindow {
    fn is_idle(&self) -> bool {
        self.held.is_none() && self.covered.is_empty()
    }

    /// Gives back the memory of an emptied filter list (idle connections keep none).
    fn trim(&mut self) {
        if self.covered.is_empty() {
            self.covered = Vec::new();
        }
    }
}

/// A room event held back during a join: its seq (messages only) and its encoded frame, whose
/// bytes are already counted in the queue's bytes.
struct Held {
    seq: Option<Seq>,
    frame: Utf8Bytes,
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
    fn window(&self) -> std::sync::MutexGuard<'_, JoinWindow> {
        self.window.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts holding back the events of `room`, before subscribing to it: until
    /// [`ConnSink::release`], they wait instead of being queued. One room at a time (a
    /// connection runs one command at a time); holding another room releases nothing and
    /// drops what the previous one held.
    pub(crate) fn hold(&self, room: RequestId) {
        let mut w = self.window();
        if let Some(previous) = w.held.take() {
            self.discard(previous.1);
        }
        w.held = Some(Box::new((room, Vec::new())));
        self.watching.store(true, Ordering::Release);
    }

    /// Ends holding `room`'s events, as `how` says, right after its history was queued: the
    /// events passed on are queued in the order they arrived, before any later event.
    pub(crate) fn release(&self, room: RequestId, how: Release) {
        let mut w = self.window();
        let held = match w.held.take() {
            Some(h) if h.0 == room => h.1,
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
        w.trim();
        self.watching.store(!w.is_idle(), Ordering::Release);
    }

    /// Forgets what the joins of `room` left to filter (on leaving it).
    pub(crate) fn forget(&self, room: RequestId) {
        if !self.watching.load(Ordering::Acquire) {
            return;
        }
        let mut w = self.window();
        w.covered.retain(|(r, _)| *r != room);
        w.trim();
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
    pub(super) fn deliver_watched(&self, event: &RoomEvent, frame: Utf8Bytes) {
        let room = event.request_id();
        let seq = event.seq();
        let mut w = self.window();
        if let Some(h) = &mut w.held
            && h.0 == room
        {
            let held = &mut h.1;
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
            w.trim();
            self.watching.store(!w.is_idle(), Ordering::Release);
        }
        // Queued under the window's lock, so that it follows whatever a release queues.
        self.push(frame);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;

    use labchat_core::{Published, RoomSink, SinkId};

    use super::*;

    fn frame(s: &str) -> Utf8Bytes {
        Utf8Bytes::from(s.to_owned())
    }

    fn room(n: u8) -> RequestId {
        RequestId::parse(&format!("{n:02x}").repeat(12)).unwrap()
    }

    fn posted(r: RequestId, seq: u64) -> Arc<Published> {
        Published::new(RoomEvent::MessagePosted(
            labchat_domain::Message::restore(labchat_domain::MessageRecord {
                id: labchat_domain::MessageId::parse(&format!("{seq:024x}")).unwrap(),
                request_id: r,
                seq: Some(Seq::new(seq).unwrap()),
                sender_id: labchat_domain::UserId::parse("u").unwrap(),
                sender_role: labchat_domain::Role::Lab,
                text: Some(labchat_domain::MessageText::parse("m".to_owned(), 10).unwrap()),
                created_at: labchat_domain::Timestamp::from_unix_millis(1),
                client_message_id: None,
                delivered_to: vec![],
                read_by: vec![],
                edited_at: None,
                deleted_at: None,
                deleted_by: None,
            })
            .unwrap(),
        ))
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

    #[test]
    fn events_hidden_from_the_connection_s_user_are_not_delivered() {
        use labchat_domain::{Role, UserId};
        let room = RequestId::parse("6751b6df1ad14eaa13a03313").unwrap();
        let (me, other) = (UserId::parse("me").unwrap(), UserId::parse("other").unwrap());
        let sink = ConnSink::new(SinkId(1), 8, 1024).for_user(me.clone());
        for user_id in [me, other] {
            sink.deliver(Published::new(RoomEvent::Typing {
                request_id: room,
                user_id: user_id.clone(),
                role: Role::Lab,
            }));
            sink.deliver(Published::new(RoomEvent::MemberLeft { request_id: room, user_id }));
        }
        let frames: Vec<String> = std::iter::from_fn(|| sink.try_take()).map(|f| f.as_str().to_owned()).collect();
        assert_eq!(frames.len(), 2, "{frames:?}");
        assert!(frames.iter().all(|f| f.contains(r#""userId":"other""#)), "{frames:?}");
    }
}
