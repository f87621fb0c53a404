//! The order of a room on this node: writes to one room, joins of it and recounts of it happen
//! one at a time, so ids, storage order and broadcast order agree.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use labchat_domain::RequestId;
use tokio::sync::{Mutex, OwnedMutexGuard};

const ORDER_STRIPES: usize = 256;

/// Writes to one room, joins of it and recounts of it happen one at a time on this node.
pub(super) struct RoomOrder(Box<[Arc<Mutex<()>>]>);

impl RoomOrder {
    pub(super) fn new() -> Self {
        Self((0..ORDER_STRIPES).map(|_| Arc::new(Mutex::new(()))).collect())
    }

    pub(super) async fn lock(&self, room: RequestId) -> OwnedMutexGuard<()> {
        let mut h = DefaultHasher::new();
        room.hash(&mut h);
        let stripe = usize::try_from(h.finish() % ORDER_STRIPES as u64).unwrap_or(0);
        Arc::clone(&self.0[stripe]).lock_owned().await
    }
}
