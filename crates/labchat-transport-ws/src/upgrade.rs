//! The websocket upgrade: credentials from the handshake, the connection limit, and the hand-off
//! of the upgraded stream to its [`Connection`] task.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::auth::AuthError;
use crate::connection::Connection;
use crate::context::{Peer, ServerStats};
use crate::drain::Phase;
use crate::http::{HttpResponse, error_response, reject};
use crate::metered::Metered;

/// The subprotocol browsers offer (with `bearer.<JWT>`) and the server selects.
pub(crate) const SUBPROTOCOL: &str = "labchat.v1";

const BEARER_PROTOCOL_PREFIX: &str = "bearer.";

fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

pub(crate) fn is_upgrade(headers: &HeaderMap) -> bool {
    header_has_token(headers, header::CONNECTION, "upgrade") && header_has_token(headers, header::UPGRADE, "websocket")
}

/// The token from `Authorization: Bearer`, or from the offered subprotocols; and whether the
/// client offered [`SUBPROTOCOL`].
fn credentials(headers: &HeaderMap) -> (Option<String>, bool) {
    let offered: Vec<&str> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let wants_subprotocol = offered.contains(&SUBPROTOCOL);
    let from_header = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| {
        let (scheme, token) = v.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
    });
    let from_protocol = || {
        wants_subprotocol
            .then(|| offered.iter().find_map(|p| p.strip_prefix(BEARER_PROTOCOL_PREFIX)).map(str::to_owned))
            .flatten()
    };
    (from_header.or_else(from_protocol), wants_subprotocol)
}

pub(crate) fn upgrade(req: Request<Incoming>, peer: Peer) -> HttpResponse {
    let Peer { addr: peer, server, cancel, tracker, .. } = peer;
    let headers = req.headers();
    let version_ok = headers.get(header::SEC_WEBSOCKET_VERSION).is_some_and(|v| v == "13");
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY).filter(|_| version_ok && req.method() == Method::GET) else {
        reject("bad_handshake");
        return error_response(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "a websocket upgrade needs GET, Sec-WebSocket-Version: 13 and Sec-WebSocket-Key",
        );
    };
    let accept = derive_accept_key(key.as_bytes());
    let (token, wants_subprotocol) = credentials(headers);
    let Some(token) = token else {
        reject("missing_token");
        tracing::info!(%peer, reason = "missing token", "handshake rejected");
        return error_response(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "missing token: send Authorization: Bearer <JWT>, or offer subprotocols labchat.v1 and bearer.<JWT>",
        );
    };
    let principal = match server.auth().authenticate(&token) {
        Ok(p) => p,
        Err(AuthError::Unauthorized(m)) => {
            reject("invalid_token");
            tracing::info!(%peer, reason = %m, "handshake rejected");
            return error_response(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", &m);
        }
        Err(AuthError::Forbidden(m)) => {
            reject("forbidden_role");
            tracing::info!(%peer, reason = %m, "handshake rejected");
            return error_response(StatusCode::FORBIDDEN, "FORBIDDEN", &m);
        }
    };
    if server.lifecycle().phase() == Phase::Closing {
        reject("draining");
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            "this node is restarting; connect again (to another node)",
        );
    }
    let stats = server.stats();
    if stats.open_connections.fetch_add(1, Ordering::AcqRel) >= server.config().max_connections {
        stats.open_connections.fetch_sub(1, Ordering::AcqRel);
        reject("connection_limit");
        tracing::warn!(%peer, reason = "connection limit", "handshake rejected");
        return error_response(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", "too many connections; retry later");
    }
    let id = stats.next_connection.fetch_add(1, Ordering::Relaxed);
    // Only what the connection needs for its whole life goes into its task: a task's captured
    // values stay allocated as long as the connection is open (the request, for one, does not).
    let on_upgrade = hyper::upgrade::on(req);
    let mut conn = Connection::new(id, principal, peer, Arc::clone(&server));
    tracker.spawn(async move {
        let guard = OpenGuard::new(server.stats());
        match on_upgrade.await {
            Ok(upgraded) => {
                let cfg = server.config();
                // Text frames bypass tungstenite's write buffer (see `Writing::poll_write`): it
                // only sees control frames, and the frames drained when the server closes.
                let ws_config = WebSocketConfig::default()
                    .read_buffer_size(cfg.read_buffer_bytes)
                    .write_buffer_size(0)
                    .max_write_buffer_size(cfg.outbound_max_bytes.max(64 * 1024))
                    .max_message_size(Some(cfg.max_frame_bytes))
                    .max_frame_size(Some(cfg.max_frame_bytes));
                let io = Metered::new(TokioIo::new(upgraded));
                let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(ws_config)).await;
                let (cancel, registration) = server.lifecycle().register(id, &cancel);
                conn.run(ws, cancel).await;
                drop(registration);
            }
            Err(e) => tracing::debug!(%peer, error = %e, "upgrade failed"),
        }
        drop(guard);
    });
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if wants_subprotocol {
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(SUBPROTOCOL));
    }
    resp
}

/// Counts an open connection for its lifetime.
struct OpenGuard(Arc<ServerStats>);

impl OpenGuard {
    fn new(stats: Arc<ServerStats>) -> Self {
        metrics::gauge!("labchat_connections_open").increment(1.0);
        Self(stats)
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        metrics::gauge!("labchat_connections_open").decrement(1.0);
        self.0.open_connections.fetch_sub(1, Ordering::AcqRel);
    }
}
