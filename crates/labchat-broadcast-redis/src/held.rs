//! The node's bound on messages held ahead of gaps, all rooms together: each room's
//! [`RoomOrder`](crate::order::RoomOrder) has its own bound, and this one keeps many rooms with
//! open gaps from adding up. Past it, the room whose message crossed it drops what it holds and
//! is re-read from the store.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::metrics_names::REORDER_HELD;

/// Messages held ahead of gaps on this node, against its bound.
#[derive(Debug)]
pub(crate) struct HeldCount {
    node_id: String,
    max: usize,
    total: AtomicUsize,
}

impl HeldCount {
    pub(crate) fn new(node_id: String, max: usize) -> Self {
        metrics::gauge!(REORDER_HELD, "node" => node_id.clone()).set(0.0);
        Self { node_id, max: max.max(1), total: AtomicUsize::new(0) }
    }

    /// A room that had `*counted` messages held now has `now`: updates the node's total (and
    /// `*counted`), and returns whether the node holds more than its bound.
    pub(crate) fn update(&self, counted: &mut usize, now: usize) -> bool {
        let before = *counted;
        *counted = now;
        let total = if now >= before {
            self.total.fetch_add(now - before, Ordering::Relaxed) + (now - before)
        } else {
            self.total.fetch_sub(before - now, Ordering::Relaxed) - (before - now)
        };
        if now != before {
            metrics::gauge!(REORDER_HELD, "node" => self.node_id.clone()).set(total as f64);
        }
        total > self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_add_up_against_the_node_bound() {
        let held = HeldCount::new("n".into(), 5);
        let (mut a, mut b) = (0, 0);
        assert!(!held.update(&mut a, 3));
        assert!(!held.update(&mut b, 2), "5 held: at the bound, not past it");
        assert!(held.update(&mut b, 3), "6 held");
        assert!(!held.update(&mut b, 0), "room b dropped what it held");
        assert_eq!((a, b, held.total.load(Ordering::Relaxed)), (3, 0, 3));
        assert!(!held.update(&mut a, 0));
        assert_eq!(held.total.load(Ordering::Relaxed), 0);
    }
}
