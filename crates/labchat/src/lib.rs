//! # labchat
//!
//! The application: configuration, the wiring of concrete adapters ([`app`]) and the binary's
//! commands. This is the one crate that names concrete adapters.

pub mod app;
pub mod cli;
pub mod config;
pub mod observe;
pub mod token;
