//! One HTTP connection of a listener: HTTP/1.1 served with hyper, each request routed by its
//! listener, method and path: the probes, `/metrics`, `POST /drain`, the demo page, and the
//! websocket upgrades handed to [`crate::upgrade`].

use std::convert::Infallible;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use labchat_core::Chat;
use serde_json::json;
use tokio::net::TcpStream;

use crate::context::{Peer, Port, Server};
use crate::gate::PendingGuard;
use crate::http::{HttpResponse, error_response, json_response};
use crate::upgrade::{is_upgrade, upgrade};

/// Serves one accepted connection until it closes, is upgraded, or shutdown; counted as
/// pending (by `pending`) until then.
pub(crate) async fn serve_http(stream: TcpStream, peer: Peer, pending: PendingGuard) {
    let (addr, cancel) = (peer.addr, peer.cancel.clone());
    let header_timeout = peer.server.config().handshake_timeout;
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

async fn route(req: Request<Incoming>, peer: Peer) -> HttpResponse {
    let path = req.uri().path();
    match (peer.port, req.method(), path) {
        (_, &Method::GET, "/healthz") => json_response(StatusCode::OK, &json!({"status": "ok"})),
        (_, &Method::GET, "/readyz") if peer.server.lifecycle().is_draining() => {
            json_response(StatusCode::SERVICE_UNAVAILABLE, &json!({"status": "draining"}))
        }
        (_, &Method::GET, "/readyz") => readiness(peer.server.chat()).await,
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
    let started = server.lifecycle().drain();
    if started {
        tracing::info!("drain asked for on the operations listener");
    }
    let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    json_response(
        StatusCode::ACCEPTED,
        &json!({
            "status": "draining",
            "started": started,
            "delayMs": ms(server.config().drain_delay),
            "windowMs": ms(server.config().drain_window),
        }),
    )
}

fn metrics_response(server: &Server) -> HttpResponse {
    match server.metrics() {
        Some(render) => {
            // Counted by the use cases (which record no metrics themselves), read when scraped.
            metrics::counter!("labchat_join_history_reuses_total").absolute(server.chat().history_reuses());
            let mut resp = Response::new(Full::new(Bytes::from(render())));
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
            resp
        }
        None => error_response(StatusCode::NOT_FOUND, "NOT_FOUND", "metrics are not enabled"),
    }
}

/// A file compiled into the binary, served as is.
fn static_file(body: &'static str, content_type: &'static str) -> HttpResponse {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}
