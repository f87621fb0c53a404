//! The server's top loop: the listeners' accept loops ([`crate::accept`]) and the drain,
//! until shutdown; then every connection is closed within the grace period. Each layer below
//! it (accept, routes, upgrade, connection, dispatch) imports only the layers below.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::accept::accept_loop;
use crate::context::{Port, Server};
use crate::gate::Gate;

/// Serves `listener` until `shutdown` completes; then stops accepting, lets every connection
/// finish the frame it is handling, closes each with 1001, and returns once all are closed or
/// the configured grace period has passed. Probes and `/metrics` are served on `listener`.
pub async fn run(
    listener: TcpListener,
    server: Arc<Server>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    run_with_ops(listener, None, server, shutdown).await
}

/// As [`run`], with an optional operations listener. When `ops` is given, it serves `/healthz`,
/// `/readyz`, `/metrics` and `POST /drain` (nothing else), and `listener` no longer serves
/// `/metrics`; the probes stay on both, so a load balancer may keep probing the chat port.
///
/// A drain asked for through [`Server::lifecycle`] (or `POST /drain`) runs as
/// [`crate::drain`] says and then stops the server as `shutdown` does; `shutdown` completing
/// during a drain stops it at once (the connections left are closed with 1012).
pub async fn run_with_ops(
    listener: TcpListener,
    ops: Option<TcpListener>,
    server: Arc<Server>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let chat_port = if ops.is_some() { Port::ChatOnly } else { Port::Chat };
    let chat_gate = Gate::new(chat_port, &server);
    let accepting = async {
        let chat = accept_loop(listener, chat_port, chat_gate, &server, &cancel, &tracker);
        match ops {
            Some(ops) => {
                let ops_gate = Gate::new(Port::Ops, &server);
                tokio::join!(chat, accept_loop(ops, Port::Ops, ops_gate, &server, &cancel, &tracker));
            }
            None => chat.await,
        }
    };
    let lifecycle = server.lifecycle();
    let draining = lifecycle.run_drain(server.config().drain_delay, server.config().drain_window);
    tokio::select! {
        () = shutdown => {}
        () = accepting => {}
        () = draining => {}
    }
    tracing::info!(
        open_connections = server.stats().open_connections(),
        close_code = lifecycle.close_frame().0,
        "shutting down: closing connections"
    );
    cancel.cancel();
    tracker.close();
    if tokio::time::timeout(server.config().shutdown_grace, tracker.wait()).await.is_err() {
        tracing::warn!(
            open_connections = server.stats().open_connections(),
            "shutdown grace period over; dropping connections"
        );
    }
    Ok(())
}
