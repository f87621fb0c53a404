//! Tests of the outbox: failed batches go back in order, and past a bound the oldest entries
//! are dropped and their rooms resynced.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use labchat_domain::{ObjectIdBytes, RequestId};

use super::*;

fn room(n: u32) -> RequestId {
    RequestId::from_object_id(ObjectIdBytes::from_parts(1_700_000_000, [9, 9, 9, 9, 9], n))
}

fn entry(n: u32, keep: Keep, at: Instant) -> Entry {
    Entry { channel: format!("c{n}"), payload: vec![b'x'; 10], room: Some(room(n)), keep, at }
}

fn channels(v: &[Entry]) -> Vec<String> {
    v.iter().map(|e| e.channel.clone()).collect()
}

fn bounds(max_entries: usize) -> OutboxBounds {
    OutboxBounds { max_entries, max_bytes: 1000, max_age: Duration::from_secs(30) }
}

#[test]
fn a_failed_batch_goes_back_to_the_front_in_order_and_typing_is_dropped() {
    let now = Instant::now();
    let mut o = Outbox::new(bounds(10));
    for n in 1..=3 {
        o.push(entry(n, if n == 2 { Keep::Never } else { Keep::Always }, now), now);
    }
    let batch = o.take(2);
    assert_eq!(o.failed(batch), 1, "the typing notice is dropped");
    o.push(entry(4, Keep::Always, now), now);
    assert_eq!(channels(&o.take(10)), ["c1", "c3", "c4"]);
    assert!(!o.has_work());
}

#[test]
fn past_a_bound_the_oldest_are_dropped_and_their_rooms_resynced() {
    let now = Instant::now();
    let mut o = Outbox::new(bounds(2));
    for n in 1..=3 {
        o.push(entry(n, Keep::Always, now), now);
    }
    assert_eq!(o.pending(), (2, 20));
    assert_eq!(o.take_resync(), (false, vec![room(1)]));
    let mut by_bytes = Outbox::new(OutboxBounds { max_bytes: 25, ..bounds(100) });
    let dropped: Vec<_> = (1..=3).flat_map(|n| by_bytes.push(entry(n, Keep::Always, now), now)).collect();
    assert_eq!(dropped, [Dropped::Bytes]);
    let later = now + Duration::from_secs(31);
    assert_eq!(by_bytes.enforce(later), [Dropped::Age, Dropped::Age]);
    assert_eq!(by_bytes.take_resync(), (false, vec![room(1), room(2), room(3)]));
}

#[test]
fn a_replay_republishes_what_was_sent_within_the_window_in_order() {
    let t0 = Instant::now();
    let mut o = Outbox::new(bounds(10));
    for n in 1..=4 {
        let at = t0 + Duration::from_secs(u64::from(n));
        o.push(entry(n, if n == 3 { Keep::UntilSent } else { Keep::Always }, at), at);
    }
    let batch = o.take(10);
    o.published(batch, t0 + Duration::from_secs(4));
    assert!(!o.has_work());
    // Away for 2.5 s at t0 + 4.5 s: what was sent from t0 + 2 s on, announcements excepted.
    assert_eq!(o.replay(Duration::from_millis(2500), t0 + Duration::from_millis(4500)), 2);
    assert_eq!(channels(&o.take(10)), ["c2", "c4"]);
    assert_eq!(o.take_resync(), (false, vec![]));
}

#[test]
fn a_replay_missing_entries_cut_by_a_bound_resyncs_every_room() {
    let now = Instant::now();
    let mut o = Outbox::new(bounds(2));
    for n in 1..=3 {
        o.push(entry(n, Keep::Always, now), now);
        let batch = o.take(1);
        o.published(batch, now);
    }
    assert_eq!(o.replay(Duration::from_secs(1), now), 2);
    assert_eq!(o.take_resync(), (true, vec![]));
}
