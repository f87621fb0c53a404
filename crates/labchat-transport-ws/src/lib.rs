//! # labchat-transport-ws
//!
//! The websocket adapter of labchat. It answers HTTP on one port: websocket upgrades on `/` and
//! `/ws` (authenticated in the handshake with a JWT), and health probes. It is the only crate
//! that knows the JSON wire format ([`protocol`]).
//!
//! Start it with [`run`], giving it a bound listener, the use cases ([`labchat_core::Chat`]),
//! an [`Authenticator`] and a shutdown future.
//! [`run_with_ops`] adds a second listener for the probes, `/metrics` and `POST /drain` alone;
//! [`Server::lifecycle`] asks for a drain (see [`Lifecycle`]).

mod accept;
mod access;
mod auth;
mod close;
mod config;
mod connection;
mod context;
mod dispatch;
mod drain;
mod errors;
mod gate;
mod http;
mod joined;
mod metered;
mod outbound;
pub mod protocol;
mod rate_limit;
mod routes;
mod server;
mod session;
mod socket;
mod timers;
mod typing_gate;
mod upgrade;
mod wire;

pub use auth::{AuthError, AuthSettings, Authenticator, JwtAlgorithm, KeyError, Principal};
pub use config::WsConfig;
pub use context::{MetricsRenderer, Server, ServerStats};
pub use drain::{Lifecycle, Phase};
pub use server::{run, run_with_ops};
