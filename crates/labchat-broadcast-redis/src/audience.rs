//! Inbox notices routed by audience. A room's inbox notice concerns only the users who may see
//! the room (every LAB user, and the teacher who created the request; `Request::authorize`), so
//! a node writing envelope version 3 publishes it once, on its creator's channel
//! `labchat:inbox:teacher:<creator id>` (`labchat:inbox:teacher:` for a request without a
//! creator) instead of `labchat:inbox`. A node with an inbox subscriber who is a LAB user
//! subscribes the pattern `labchat:inbox:teacher:*` (every room); one with teachers' inbox
//! subscribers only subscribes their channels. Each is subscribed when the first such local
//! subscriber appears and unsubscribed when the last goes, so a node hears a notice only when some
//! local subscriber may see its room, and a notice costs one publish however many nodes there are.
//! A node never holds the pattern and a teacher's channel at once (it would hear the notice
//! twice): when a LAB user arrives, the pattern is subscribed before the channels are dropped, and
//! the other way round when the last LAB user leaves, so no notice is missed meanwhile.
//!
//! Every node still subscribes `labchat:inbox` (resync notices, and the inbox notices of nodes
//! writing version 2, which publish there as the previous release does: docs/deployment.md,
//! "Rolling upgrade"). The creator of a room is read from the store and kept for
//! `RedisSettings::creator_ttl`, the lifetime the use cases give a request they looked up (a
//! request may be reassigned to another teacher: their inbox then hears the room within that
//! time, as their access to it does). A notice whose room cannot be looked up goes to
//! `labchat:inbox`, which every node hears, so a failed lookup never loses one; a creator read
//! before is then kept one more lifetime, so a slow store is not asked again at every notice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use labchat_core::ChatStore;

use labchat_domain::{RequestId, Role, User, UserId};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::inbox;
use crate::outbox::Keep;
use crate::publisher::{self, Outgoing};

/// What every audience channel's name starts with.
const PREFIX: &str = "labchat:inbox:teacher:";

/// The most rooms whose audiences are kept; past it the cache starts again empty.
const CACHED_ROOMS: usize = 65_536;

/// How many notices may wait for their room's audiences before new ones are dropped (counted).
pub(crate) const QUEUE: usize = 16_384;

/// The channel of the inbox notices of the rooms a teacher created (`None`: without a creator).
fn teacher(id: Option<&UserId>) -> String {
    format!("{PREFIX}{}", id.map_or("", UserId::as_str))
}

/// The pattern of every audience channel: what a LAB user may see.
fn every_room() -> String {
    format!("{PREFIX}*")
}

/// Whether `channel` is an audience channel.
pub(crate) fn is_audience(channel: &str) -> bool {
    channel.starts_with(PREFIX)
}

/// A notice waiting for its room's audiences.
pub(crate) struct Pending {
    pub(crate) room: RequestId,
    pub(crate) payload: Vec<u8>,
    pub(crate) keep: Keep,
}

/// The channels and patterns a node subscribes for its inbox subscribers.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Wanted {
    pub(crate) channels: Vec<String>,
    pub(crate) patterns: Vec<String>,
}

/// How many local inbox subscribers are LAB users, and how many each teacher has.
#[derive(Default)]
struct Counts {
    lab: usize,
    teachers: HashMap<UserId, usize>,
}

impl Counts {
    fn wanted(&self) -> Wanted {
        if self.lab > 0 {
            Wanted { channels: Vec::new(), patterns: vec![every_room()] }
        } else {
            Wanted { channels: self.teachers.keys().map(|t| teacher(Some(t))).collect(), patterns: Vec::new() }
        }
    }
}

/// What to tell the link: subscribe (`true`) or unsubscribe (`false`), a pattern (`true`) or a
/// channel (`false`), and which.
pub(crate) type Change = (bool, bool, String);

/// The node's inbox subscribers as far as the backplane cares.
#[derive(Default)]
pub(crate) struct Interest(Mutex<Counts>);

impl Interest {
    fn lock(&self) -> MutexGuard<'_, Counts> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one more (`more`) or one less local inbox subscriber `user`, and calls `change`
    /// for every subscription to make, then every one to drop, under the lock, so that the link
    /// gets the changes in the order they were counted.
    pub(crate) fn count(&self, user: &User, more: bool, mut change: impl FnMut(Change)) {
        let mut counts = self.lock();
        let before = counts.wanted();
        match (user.role(), more) {
            (Role::Lab, true) => counts.lab += 1,
            (Role::Lab, false) => counts.lab = counts.lab.saturating_sub(1),
            (Role::Teacher, true) => *counts.teachers.entry(user.id().clone()).or_insert(0) += 1,
            (Role::Teacher, false) => {
                if let Some(n) = counts.teachers.get_mut(user.id()) {
                    *n -= 1;
                    if *n == 0 {
                        counts.teachers.remove(user.id());
                    }
                }
            }
        }
        let after = counts.wanted();
        for (subscribe, from, to) in [(true, &before, &after), (false, &after, &before)] {
            for p in to.patterns.iter().filter(|p| !from.patterns.contains(p)) {
                change((subscribe, true, p.clone()));
            }
            for c in to.channels.iter().filter(|c| !from.channels.contains(c)) {
                change((subscribe, false, c.clone()));
            }
        }
    }

    /// What to subscribe now.
    pub(crate) fn wanted(&self) -> Wanted {
        self.lock().wanted()
    }
}

/// What the routing task needs: where to read creators, and where to hand the notices.
pub(crate) struct Router {
    pub(crate) node: String,
    pub(crate) store: Arc<dyn ChatStore>,
    /// How long a creator read routes its room's notices.
    pub(crate) creator_ttl: Duration,
    pub(crate) op_timeout: Duration,
    pub(crate) out: mpsc::Sender<Outgoing>,
}

/// Hands the notices over to the publisher, in order, each for its room's audience channel.
pub(crate) async fn route(router: Router, mut rx: mpsc::Receiver<Pending>) {
    let mut cache: HashMap<RequestId, (String, Instant)> = HashMap::new();
    while let Some(p) = rx.recv().await {
        let channel = match cache.get(&p.room) {
            Some((c, read)) if read.elapsed() < router.creator_ttl => c.clone(),
            _ => match lookup(&router, p.room).await {
                Some(c) => {
                    if cache.len() >= CACHED_ROOMS {
                        cache.clear();
                    }
                    cache.insert(p.room, (c.clone(), Instant::now()));
                    c
                }
                None => {
                    if let Some((_, read)) = cache.get_mut(&p.room) {
                        *read = Instant::now();
                    }
                    inbox::CHANNEL.to_owned()
                }
            },
        };
        if let Err(e) = router.out.try_send(Outgoing { channel, payload: p.payload, room: Some(p.room), keep: p.keep })
        {
            publisher::dropped(&router.node, 1, &format!("publish queue: {e}"));
        }
    }
}

/// The audience channel of the room, or `None` when it cannot be looked up now.
async fn lookup(router: &Router, room: RequestId) -> Option<String> {
    match tokio::time::timeout(router.op_timeout, router.store.find_request(room)).await {
        Ok(Ok(Some(request))) => Some(teacher(request.created_by())),
        Ok(Ok(None)) => {
            tracing::debug!(%room, "an inbox notice of an unknown request goes to labchat:inbox");
            None
        }
        Ok(Err(e)) => {
            tracing::warn!(%room, error = %e, "looking up a room's inbox audience failed; the notice goes to labchat:inbox");
            None
        }
        Err(_) => {
            tracing::warn!(%room, "looking up a room's inbox audience timed out; the notice goes to labchat:inbox");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn user(id: &str, role: Role) -> User {
        User::new(UserId::parse(id).unwrap(), role)
    }

    fn changes(interest: &Interest, u: &User, more: bool) -> Vec<Change> {
        let mut got = Vec::new();
        interest.count(u, more, |c| got.push(c));
        got
    }

    #[test]
    fn a_node_holds_its_teachers_channels_or_the_pattern_never_both_and_subscribes_before_it_drops() {
        let i = Interest::default();
        let (t1, lab1, lab2) = (user("t1", Role::Teacher), user("lab-1", Role::Lab), user("lab-2", Role::Lab));
        let t1_channel = "labchat:inbox:teacher:t1".to_owned();
        let all = "labchat:inbox:teacher:*".to_owned();
        assert_eq!(changes(&i, &t1, true), [(true, false, t1_channel.clone())]);
        assert_eq!(changes(&i, &t1, true), [], "a second connection of t1");
        assert_eq!(changes(&i, &lab1, true), [(true, true, all.clone()), (false, false, t1_channel.clone())]);
        assert_eq!(changes(&i, &lab2, true), []);
        assert_eq!(changes(&i, &lab1, false), []);
        assert_eq!(i.wanted(), Wanted { channels: vec![], patterns: vec![all.clone()] });
        assert_eq!(changes(&i, &lab2, false), [(true, false, t1_channel.clone()), (false, true, all)]);
        assert_eq!(changes(&i, &t1, false), []);
        assert_eq!(changes(&i, &t1, false), [(false, false, t1_channel)]);
        assert_eq!(changes(&i, &t1, false), [], "one too many is ignored");
        assert_eq!(i.wanted(), Wanted::default());
        assert!(is_audience(&teacher(None)) && !is_audience("labchat:inbox"));
    }

    /// A request reassigned to another teacher: its notices go to the new teacher's channel once
    /// the creator read before is past its lifetime; until then, to the old one's.
    #[tokio::test(start_paused = true)]
    async fn a_reassigned_room_is_routed_to_its_new_teacher_within_the_creators_lifetime() {
        use labchat_domain::{ObjectIdBytes, Request};
        let store = Arc::new(labchat_memory::MemoryStore::new());
        let room = RequestId::from_object_id(ObjectIdBytes::from_bytes([7; 12]));
        store.add_request(Request::new(room, UserId::parse("t1").unwrap()));
        let (out, mut published) = mpsc::channel(8);
        let ttl = Duration::from_secs(60);
        let (node, op_timeout) = ("n".to_owned(), Duration::from_secs(1));
        let router = Router { node, store: store.clone(), creator_ttl: ttl, op_timeout, out };
        let (tx, rx) = mpsc::channel(8);
        tokio::spawn(route(router, rx));
        let mut channel_of_next = async || {
            tx.send(Pending { room, payload: vec![], keep: Keep::Always }).await.unwrap();
            published.recv().await.unwrap().channel
        };
        assert_eq!(channel_of_next().await, "labchat:inbox:teacher:t1");
        store.add_request(Request::new(room, UserId::parse("t2").unwrap()));
        tokio::time::sleep(ttl / 2).await;
        assert_eq!(channel_of_next().await, "labchat:inbox:teacher:t1", "kept within its lifetime");
        tokio::time::sleep(ttl / 2).await;
        assert_eq!(channel_of_next().await, "labchat:inbox:teacher:t2", "read again past it");
        // A lookup that finds nothing sends the notice to every node, and keeps the creator read
        // before one more lifetime rather than asking the store again at every notice.
        store.remove_request(room);
        tokio::time::sleep(ttl).await;
        assert_eq!(channel_of_next().await, "labchat:inbox");
        store.add_request(Request::new(room, UserId::parse("t3").unwrap()));
        assert_eq!(channel_of_next().await, "labchat:inbox:teacher:t2", "not asked again within the lifetime");
        tokio::time::sleep(ttl).await;
        assert_eq!(channel_of_next().await, "labchat:inbox:teacher:t3");
    }
}
