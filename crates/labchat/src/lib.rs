//! # labchat
//!
//! The application: configuration, the wiring of concrete adapters ([`app`]), the embedded
//! in-memory store ([`MemoryStore`]) and in-process broadcaster ([`LocalBroadcaster`]), and the
//! binary's commands. This is the one crate that names concrete adapters.

pub mod app;
pub mod broadcast;
pub mod cli;
pub mod config;
pub mod memory;
pub mod observe;
pub mod token;

pub use broadcast::LocalBroadcaster;
pub use memory::MemoryStore;
