//! The rooms a connection has joined: a set kept as a short list. A connection joins a few rooms
//! (at most `max_rooms_per_connection`, 100 by default) and nearly always one, and every idle
//! connection holds its set: a list of one costs 12 bytes where a hash set costs a table of four.

use labchat_domain::RequestId;

/// A set of rooms, each once, in the order they were joined.
#[derive(Debug, Default)]
pub(crate) struct JoinedRooms(Vec<RequestId>);

impl JoinedRooms {
    /// Whether `room` is in the set.
    pub(crate) fn contains(&self, room: &RequestId) -> bool {
        self.0.contains(room)
    }

    /// Adds `room`; `true` when it was not in the set.
    pub(crate) fn insert(&mut self, room: RequestId) -> bool {
        if self.contains(&room) {
            return false;
        }
        if self.0.capacity() == 0 {
            // Exactly one room's space for the usual single room.
            self.0.reserve_exact(1);
        }
        self.0.push(room);
        true
    }

    /// Removes `room`; `true` when it was in the set. An emptied set gives its memory back.
    pub(crate) fn remove(&mut self, room: &RequestId) -> bool {
        let Some(at) = self.0.iter().position(|r| r == room) else { return false };
        self.0.swap_remove(at);
        if self.0.is_empty() {
            self.0 = Vec::new();
        }
        true
    }

    /// How many rooms are in the set.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set is empty.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The rooms.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &RequestId> {
        self.0.iter()
    }

    /// Empties the set, yielding its rooms.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = RequestId> + use<> {
        std::mem::take(&mut self.0).into_iter()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn rid(n: u32) -> RequestId {
        RequestId::parse(&format!("{n:024x}")).unwrap()
    }

    #[test]
    fn a_room_is_held_once_and_an_emptied_set_holds_no_memory() {
        let mut rooms = JoinedRooms::default();
        assert!(rooms.insert(rid(1)));
        assert!(!rooms.insert(rid(1)), "joined twice is once");
        assert_eq!((rooms.len(), rooms.0.capacity()), (1, 1));
        assert!(rooms.insert(rid(2)));
        assert!(rooms.contains(&rid(2)) && !rooms.contains(&rid(3)));
        assert!(rooms.remove(&rid(1)));
        assert!(!rooms.remove(&rid(1)), "removed twice is once");
        assert_eq!(rooms.iter().copied().collect::<Vec<_>>(), [rid(2)]);
        assert!(rooms.remove(&rid(2)));
        assert!(rooms.is_empty());
        assert_eq!(rooms.0.capacity(), 0);
        rooms.insert(rid(3));
        assert_eq!(rooms.drain().collect::<Vec<_>>(), [rid(3)]);
        assert!(rooms.is_empty());
    }
}
