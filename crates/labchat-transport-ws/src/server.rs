//! The listener: HTTP/1.1 on each accepted connection, websocket upgrades handed to
//! [`crate::connection`].

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use labchat_core::{Chat, Clock};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::accept::{Gate, PendingGuard, Port, accept_loop};
use crate::auth::Authenticator;
use crate::config::WsConfig;
use crate::drain::Lifecycle;
use crate::upgrade::{is_upgrade, upgrade};

/// The subprotocol browsers offer (with `bearer.<JWT>`) and the server selects.
pub const SUBPROTOCOL: &str = "labchat.v1";

/// Live counters of a running server.
#[derive(Debug, Default)]
pub struct ServerStats {
    pub(crate) open_connections: AtomicUsize,
    pending_connections: Arc<AtomicUsize>,
    pub(crate) next_connection: AtomicU64,
}

impl ServerStats {
    /// Open websocket connections.
    pub fn open_connections(&self) -> usize {
        self.open_connections.load(Ordering::Relaxed)
    }

    /// Connections accepted on the chat listener and not (yet) upgraded to a websocket.
    pub fn pending_connections(&self) -> usize {
        self.pending_connections.load(Ordering::Relaxed)
    }

    /// The chat listener's pending-connection count, for its gate.
    pub(crate) fn pending_counter(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.pending_connections)
    }
}

/// Renders the process's metrics in the Prometheus text format.
pub type MetricsRenderer = Arc<dyn Fn() -> String + Send + Sync>;

/// Everything the transport needs to serve.
pub struct Server {
    chat: Arc<Chat>,
    auth: Authenticator,
    config: WsConfig,
    clock: Arc<dyn Clock>,
    stats: Arc<ServerStats>,
    metrics: Option<MetricsRenderer>,
    lifecycle: Lifecycle,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("chat", &self.chat)
            .field("auth", &self.auth)
            .field("config", &self.config)
            .field("stats", &self.stats)
            .field("metrics", &self.metrics.is_some())
            .finish()
    }
}

impl Server {
    /// A server over these use cases, verifying tokens with `auth`; `clock` tells when tokens
    /// expire (give it the use cases' clock).
    pub fn new(chat: Arc<Chat>, auth: Authenticator, config: WsConfig, clock: Arc<dyn Clock>) -> Self {
        Self { chat, auth, config, clock, stats: Arc::default(), metrics: None, lifecycle: Lifecycle::default() }
    }

    /// Serves `GET /metrics` with this renderer.
    pub fn with_metrics(mut self, render: MetricsRenderer) -> Self {
        self.metrics = Some(render);
        self
    }

    /// The server's live counters.
    pub fn stats(&self) -> Arc<ServerStats> {
        Arc::clone(&self.stats)
    }

    /// The handle that asks this server for a drain and tells its phase.
    pub fn lifecycle(&self) -> Lifecycle {
        self.lifecycle.clone()
    }

    pub(crate) fn chat(&self) -> &Chat {
        &self.chat
    }

    pub(crate) fn auth(&self) -> &Authenticator {
        &self.auth
    }

    pub(crate) fn config(&self) -> &WsConfig {
        &self.config
    }

    pub(crate) fn clock(&self) -> &dyn Clock {
        &*self.clock
    }
}

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
    let draining = lifecycle.run_drain(server.config.drain_delay, server.config.drain_window);
    tokio::select! {
        () = shutdown => {}
        () = accepting => {}
        () = draining => {}
    }
    tracing::info!(
        open_connections = server.stats.open_connections(),
        close_code = lifecycle.close_frame().0,
        "shutting down: closing connections"
    );
    cancel.cancel();
    tracker.close();
    if tokio::time::timeout(server.config.shutdown_grace, tracker.wait()).await.is_err() {
        tracing::warn!(
            open_connections = server.stats.open_connections(),
            "shutdown grace period over; dropping connections"
        );
    }
    Ok(())
}

/// What every request of one HTTP connection needs.
#[derive(Clone)]
pub(crate) struct Peer {
    pub(crate) addr: SocketAddr,
    /// The listener it came in on.
    pub(crate) port: Port,
    pub(crate) server: Arc<Server>,
    /// Cancelled at shutdown.
    pub(crate) cancel: CancellationToken,
    /// Tracks websocket connections, so shutdown can wait for them.
    pub(crate) tracker: TaskTracker,
}

pub(crate) async fn serve_http(stream: TcpStream, peer: Peer, pending: PendingGuard) {
    let (addr, cancel) = (peer.addr, peer.cancel.clone());
    let header_timeout = peer.server.config.handshake_timeout;
    let service = service_fn(move |req| {
        let peer = peer.clone();
        async move { Ok::<_, Infallible>(route(req, peer).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(64 * 1024)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => if let Err(e) = res {
            tracing::debug!(peer = %addr, error = %e, "http connection ended with an error");
        },
        () = cancel.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
    // Closed, or handed to its websocket task: no longer pending.
    drop(pending);
}

pub(crate) type HttpResponse = Response<Full<Bytes>>;

fn json_response(status: StatusCode, body: &serde_json::Value) -> HttpResponse {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn static_file(body: &'static str, content_type: &'static str) -> HttpResponse {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

pub(crate) fn error_response(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    json_response(status, &json!({ "code": code, "message": message }))
}

async fn route(req: Request<Incoming>, peer: Peer) -> HttpResponse {
    let path = req.uri().path();
    match (peer.port, req.method(), path) {
        (_, &Method::GET, "/healthz") => json_response(StatusCode::OK, &json!({"status": "ok"})),
        (_, &Method::GET, "/readyz") if peer.server.lifecycle.is_draining() => {
            json_response(StatusCode::SERVICE_UNAVAILABLE, &json!({"status": "draining"}))
        }
        (_, &Method::GET, "/readyz") => readiness(&peer.server.chat).await,
        (Port::Chat | Port::Ops, &Method::GET, "/metrics") => metrics_response(&peer.server),
        (Port::Ops, &Method::POST, "/drain") => drain_response(&peer.server),
        (Port::Ops, _, _) => error_response(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "no such path: the operations listener serves /healthz, /readyz, /metrics and POST /drain",
        ),
        (_, _, "/" | "/ws") if is_upgrade(req.headers()) => upgrade(req, peer),
        // A small chat page to try the server in a browser (no external resources), and the
        // prebuilt browser bundle of @labchat/client (clients/js) it runs on.
        (_, &Method::GET, "/") => static_file(include_str!("demo.html"), "text/html; charset=utf-8"),
        (_, &Method::GET, "/labchat-client.js") => {
            static_file(include_str!("labchat-client.js"), "text/javascript; charset=utf-8")
        }
        (_, _, "/ws") => error_response(
            StatusCode::UPGRADE_REQUIRED,
            "BAD_REQUEST",
            "this endpoint speaks websocket: send an upgrade request",
        ),
        (Port::ChatOnly, &Method::GET, "/metrics") => {
            error_response(StatusCode::NOT_FOUND, "NOT_FOUND", "metrics are served on the operations listener")
        }
        _ => error_response(StatusCode::NOT_FOUND, "NOT_FOUND", "no such path"),
    }
}

/// `/readyz`: 200 while the store answers, 503 otherwise. A backplane between nodes, when there
/// is one, is reported in the body but does not make the node unready: it still serves its own
/// clients and stores every post.
async fn readiness(chat: &Chat) -> HttpResponse {
    let (status, mut body) = match chat.ready().await {
        Ok(()) => (StatusCode::OK, json!({"status": "ready"})),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, json!({"status": "unavailable", "reason": e.to_string()})),
    };
    if let Some(b) = chat.backplane() {
        body["backplane"] = json!({"connected": b.connected, "detail": b.detail});
    }
    json_response(status, &body)
}

/// `POST /drain` (operations listener only): starts a drain, or reports the one under way.
fn drain_response(server: &Server) -> HttpResponse {
    let started = server.lifecycle.drain();
    if started {
        tracing::info!("drain asked for on the operations listener");
    }
    let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    json_response(
        StatusCode::ACCEPTED,
        &json!({
            "status": "draining",
            "started": started,
            "delayMs": ms(server.config.drain_delay),
            "windowMs": ms(server.config.drain_window),
        }),
    )
}

fn metrics_response(server: &Server) -> HttpResponse {
    match &server.metrics {
        Some(render) => {
            let mut resp = Response::new(Full::new(Bytes::from(render())));
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
            resp
        }
        None => error_response(StatusCode::NOT_FOUND, "NOT_FOUND", "metrics are not enabled"),
    }
}

/// Counts a refused handshake, by a fixed reason.
pub(crate) fn reject(reason: &'static str) {
    metrics::counter!("labchat_handshake_rejections_total", "reason" => reason).increment(1);
}
