//! HTTP helpers shared by the routes, the accept loop and the upgrade: JSON responses, the
//! `{code, message}` error body, and the count of refused handshakes.

use http_body_util::Full;
use hyper::Response;
use hyper::StatusCode;
use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use serde_json::json;

/// A response of the chat and operations listeners.
pub(crate) type HttpResponse = Response<Full<Bytes>>;

/// `body` as JSON, with this status.
pub(crate) fn json_response(status: StatusCode, body: &serde_json::Value) -> HttpResponse {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// An error: `{code, message}` with this status.
pub(crate) fn error_response(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    json_response(status, &json!({ "code": code, "message": message }))
}

/// Counts a refused handshake, by a fixed reason.
pub(crate) fn reject(reason: &'static str) {
    metrics::counter!("labchat_handshake_rejections_total", "reason" => reason).increment(1);
}
