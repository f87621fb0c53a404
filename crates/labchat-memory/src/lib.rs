//! # labchat-memory
//!
//! labchat's in-process adapters, for one node and for tests:
//! - [`MemoryStore`], a [`labchat_core::ChatStore`] in process memory: the embedded default when
//!   no MongoDB is configured (nothing persists across restarts);
//! - [`LocalBroadcaster`], a [`labchat_core::Broadcaster`] that keeps each room's subscribers in
//!   one process;
//! - [`MemoryPresence`], a [`labchat_core::Presence`] for one node (members and the typing
//!   throttle in memory).
//!
//! Both pass the same contracts as the production adapters (the store contract suite in
//! `tests/`), so other teams can run labchat's use cases on them without any server.

mod broadcast;
mod inbox;
mod presence;
mod seen;
mod state;
mod store;

pub use broadcast::LocalBroadcaster;
pub use presence::MemoryPresence;
pub use store::MemoryStore;
