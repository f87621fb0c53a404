//! # labchat
//!
//! The application: configuration, wiring of concrete adapters, and the binary's commands.
//! This is the one crate that names concrete adapters.

pub mod broadcast;
pub mod memory;

pub use broadcast::LocalBroadcaster;
pub use memory::MemoryStore;
