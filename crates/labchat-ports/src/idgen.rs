use std::sync::Mutex;

use labchat_domain::{MessageId, ObjectIdBytes, Timestamp};

/// Makes message ids in the Mongo object id layout: seconds, 5 random bytes chosen once per
/// generator, and a counter. Ids from one generator strictly increase, even if the clock steps
/// back, so a room's messages sort by id in the order they were stored.
#[derive(Debug)]
pub struct MessageIdGenerator {
    process: [u8; 5],
    state: Mutex<(u32, u32)>,
}

impl MessageIdGenerator {
    /// A generator with fresh random process bytes.
    pub fn new() -> Self {
        let mut process = [0u8; 5];
        if getrandom::fill(&mut process).is_err() {
            // No OS randomness: fall back to the process id, still unique per process on one host.
            process[..4].copy_from_slice(&std::process::id().to_be_bytes());
        }
        Self::with_process_bytes(process)
    }

    /// A generator with fixed process bytes (for tests).
    pub fn with_process_bytes(process: [u8; 5]) -> Self {
        Self { process, state: Mutex::new((0, 0)) }
    }

    /// The next id, stamped with `now` (or the last stamp, if `now` is earlier).
    pub fn next(&self, now: Timestamp) -> MessageId {
        let secs = u32::try_from(now.unix_seconds().max(0)).unwrap_or(u32::MAX);
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (last_secs, counter) = *st;
        let next = if secs > last_secs {
            (secs, 0)
        } else if counter < 0x00FF_FFFF {
            (last_secs, counter + 1)
        } else {
            // Counter exhausted within one second: borrow the next second to stay increasing.
            (last_secs.saturating_add(1), 0)
        };
        *st = next;
        MessageId::from_object_id(ObjectIdBytes::from_parts(next.0, self.process, next.1))
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
        let g = MessageIdGenerator::with_process_bytes([9; 5]);
        let times = [5_000, 5_000, 4_000, 6_500, 1_000, 6_999];
        let ids: Vec<_> = times.iter().map(|t| g.next(Timestamp::from_unix_millis(*t))).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        assert_eq!(ids[0].object_id().bytes()[..4], 5u32.to_be_bytes());
        assert_eq!(ids[3].object_id().bytes()[..4], 6u32.to_be_bytes());
    }
}
