//! The in-process broadcaster: room subscriptions held in memory, for a single node.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use async_trait::async_trait;
use labchat_core::{BroadcastError, Broadcaster, InboxListener, InboxNotice, Published, RoomSink, SinkId};
use labchat_domain::{RequestId, RoomEvent};

/// A [`Broadcaster`] for one process: each room's subscribers in a map.
///
/// `publish` hands one shared [`Published`] to every sink of the room while holding the map's
/// lock, so every subscriber sees a room's events in the order of the `publish` calls. Sinks only
/// enqueue, so the lock is held briefly and never across an await.
///
/// Inbox notices of the published events go to the listener registered with
/// [`Broadcaster::listen_inbox`], in the order of the `publish` calls.
#[derive(Default)]
pub struct LocalBroadcaster {
    rooms: Mutex<HashMap<RequestId, Vec<Arc<dyn RoomSink>>>>,
    inbox: Mutex<Option<Arc<dyn InboxListener>>>,
}

impl std::fmt::Debug for LocalBroadcaster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalBroadcaster").field("rooms", &self.room_count()).finish()
    }
}

impl LocalBroadcaster {
    /// A broadcaster with no rooms.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many rooms have at least one subscriber.
    pub fn room_count(&self) -> usize {
        self.lock().len()
    }

    /// How many subscriptions there are in all rooms together.
    pub fn subscription_count(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<RequestId, Vec<Arc<dyn RoomSink>>>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Broadcaster for LocalBroadcaster {
    async fn subscribe(&self, room: RequestId, sink: Arc<dyn RoomSink>) -> Result<(), BroadcastError> {
        let mut rooms = self.lock();
        let sinks = rooms.entry(room).or_default();
        if !sinks.iter().any(|s| s.id() == sink.id()) {
            sinks.push(sink);
        }
        Ok(())
    }

    async fn unsubscribe(&self, room: RequestId, sink: SinkId) -> Result<(), BroadcastError> {
        let mut rooms = self.lock();
        if let Some(sinks) = rooms.get_mut(&room) {
            sinks.retain(|s| s.id() != sink);
            if sinks.is_empty() {
                rooms.remove(&room);
            }
        }
        Ok(())
    }

    async fn publish(&self, event: RoomEvent) -> Result<(), BroadcastError> {
        let started = Instant::now();
        let room = event.request_id();
        let name = event.kind().as_str();
        let notice = InboxNotice::of(&event);
        let published = Published::new(event);
        let receivers = {
            let rooms = self.lock();
            let sinks = rooms.get(&room).map_or(&[][..], Vec::as_slice);
            for sink in sinks {
                sink.deliver(Arc::clone(&published));
            }
            // Under the same lock as the delivery: notices in the order of the publish calls.
            if let Some(notice) = notice
                && let Some(listener) = &*self.inbox.lock().unwrap_or_else(|p| p.into_inner())
            {
                listener.notice(notice);
            }
            sinks.len()
        };
        metrics::counter!("labchat_frames_out_total", "event" => name).increment(receivers as u64);
        metrics::histogram!("labchat_broadcast_seconds").record(started.elapsed());
        Ok(())
    }

    fn listen_inbox(&self, listener: Arc<dyn InboxListener>) {
        *self.inbox.lock().unwrap_or_else(|p| p.into_inner()) = Some(listener);
    }

    fn notify_inbox(&self, notice: InboxNotice) {
        // Under the rooms' lock, as `publish`'s notices: in order with them.
        let _rooms = self.lock();
        if let Some(listener) = &*self.inbox.lock().unwrap_or_else(|p| p.into_inner()) {
            listener.notice(notice);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use labchat_domain::{MessageId, UserId};

    use super::*;

    struct Recorder(SinkId, Mutex<Vec<RoomEvent>>);
    impl RoomSink for Recorder {
        fn id(&self) -> SinkId {
            self.0
        }
        fn deliver(&self, event: Arc<Published>) {
            self.1.lock().unwrap().push(event.event().clone());
        }
    }

    fn ev(room: RequestId, n: u32) -> RoomEvent {
        RoomEvent::Read {
            request_id: room,
            user_id: UserId::parse("u").unwrap(),
            messages: vec![MessageId::parse(&format!("{n:024x}")).unwrap()],
            at: labchat_domain::Timestamp::from_unix_millis(0),
        }
    }

    #[tokio::test]
    async fn delivers_in_order_to_room_members_only_and_forgets_empty_rooms() {
        let b = LocalBroadcaster::new();
        let r1 = RequestId::parse(&format!("{:024x}", 1)).unwrap();
        let r2 = RequestId::parse(&format!("{:024x}", 2)).unwrap();
        let a = Arc::new(Recorder(SinkId(1), Mutex::default()));
        let c = Arc::new(Recorder(SinkId(2), Mutex::default()));
        b.subscribe(r1, a.clone()).await.unwrap();
        b.subscribe(r1, a.clone()).await.unwrap();
        b.subscribe(r2, c.clone()).await.unwrap();
        for n in 0..3 {
            b.publish(ev(r1, n)).await.unwrap();
        }
        assert_eq!(*a.1.lock().unwrap(), (0..3).map(|n| ev(r1, n)).collect::<Vec<_>>());
        assert!(c.1.lock().unwrap().is_empty());
        assert_eq!((b.room_count(), b.subscription_count()), (2, 2));
        b.unsubscribe(r1, SinkId(1)).await.unwrap();
        b.publish(ev(r1, 9)).await.unwrap();
        assert_eq!(a.1.lock().unwrap().len(), 3);
        assert_eq!(b.room_count(), 1);
    }

    struct Notices(Mutex<Vec<InboxNotice>>);
    impl InboxListener for Notices {
        fn notice(&self, notice: InboxNotice) {
            self.0.lock().unwrap().push(notice);
        }
    }

    #[tokio::test]
    async fn inbox_notices_of_events_and_of_notify_inbox_reach_the_listener_in_order() {
        let b = LocalBroadcaster::new();
        let r = RequestId::parse(&format!("{:024x}", 1)).unwrap();
        b.notify_inbox(InboxNotice::Posted { request_id: r });
        let notices = Arc::new(Notices(Mutex::default()));
        b.listen_inbox(notices.clone());
        b.publish(ev(r, 1)).await.unwrap();
        b.notify_inbox(InboxNotice::Posted { request_id: r });
        let read = InboxNotice::Read { request_id: r, user: UserId::parse("u").unwrap() };
        assert_eq!(*notices.0.lock().unwrap(), [read, InboxNotice::Posted { request_id: r }]);
    }
}
