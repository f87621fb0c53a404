//! Message ids ([`MessageIdGenerator`]): object ids that sort in the order messages were stored.

use std::sync::Mutex;

use labchat_domain::{MessageId, ObjectIdBytes, Timestamp};

/// Makes message ids: 12-byte object ids laid out as 4 bytes of seconds, 2 bytes of
/// milliseconds, 3 random bytes chosen once per generator, and a 3-byte counter.
///
/// Ids from one generator strictly increase, even if the clock steps back; and since the time in
/// them has millisecond resolution, the ids of a process started later (a restart, a second
/// node) sort after those made earlier, as long as the clocks agree. So a room's messages sort
/// by id in the order they were stored, which `joinRoom {after}` relies on.
#[derive(Debug)]
pub struct MessageIdGenerator {
    random: [u8; 3],
    /// (milliseconds since the epoch in the last id, counter within that millisecond)
    state: Mutex<(u64, u32)>,
}

const COUNTER_MAX: u32 = 0x00FF_FFFF;

impl MessageIdGenerator {
    /// A generator with fresh random bytes.
    pub fn new() -> Self {
        let mut random = [0u8; 3];
        if getrandom::fill(&mut random).is_err() {
            // No OS randomness: fall back to the process id, still unique per process on one host.
            random.copy_from_slice(&std::process::id().to_be_bytes()[1..]);
        }
        Self::with_random_bytes(random)
    }

    /// A generator with fixed random bytes (for tests).
    pub fn with_random_bytes(random: [u8; 3]) -> Self {
        Self { random, state: Mutex::new((0, 0)) }
    }

    /// The next id, stamped with `now` (or with the last stamp, if `now` is earlier).
    pub fn next(&self, now: Timestamp) -> MessageId {
        let now_ms = u64::try_from(now.unix_millis()).unwrap_or(0);
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (last_ms, counter) = *st;
        let next = if now_ms > last_ms {
            (now_ms, 0)
        } else if counter < COUNTER_MAX {
            (last_ms, counter + 1)
        } else {
            // 16 million ids in one millisecond: borrow the next millisecond to stay increasing.
            (last_ms + 1, 0)
        };
        *st = next;
        drop(st);
        let (ms, counter) = next;
        let secs = u32::try_from(ms / 1000).unwrap_or(u32::MAX);
        let millis = u16::try_from(ms % 1000).unwrap_or(0);
        let [m0, m1] = millis.to_be_bytes();
        let [r0, r1, r2] = self.random;
        MessageId::from_object_id(ObjectIdBytes::from_parts(secs, [m0, m1, r0, r1, r2], counter))
    }
}

impl Default for MessageIdGenerator {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_strictly_increase_even_when_the_clock_steps_back() {
        let g = MessageIdGenerator::with_random_bytes([9; 3]);
        let times = [5_000, 5_000, 4_000, 6_500, 1_000, 6_999, 6_999];
        let ids: Vec<_> = times.iter().map(|t| g.next(Timestamp::from_unix_millis(*t))).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        assert_eq!(ids[0].object_id().bytes()[..4], 5u32.to_be_bytes());
        assert_eq!(ids[3].object_id().bytes()[..6], [0, 0, 0, 6, 0x01, 0xF4]);
    }

    #[test]
    fn a_later_generator_sorts_after_an_earlier_one_in_the_same_second() {
        // The earlier process got the largest random bytes, the later one the smallest.
        let earlier = MessageIdGenerator::with_random_bytes([0xFF; 3]);
        let later = MessageIdGenerator::with_random_bytes([0x00; 3]);
        let a = earlier.next(Timestamp::from_unix_millis(1_700_000_000_100));
        let b = later.next(Timestamp::from_unix_millis(1_700_000_000_101));
        assert!(a < b);
    }
}
