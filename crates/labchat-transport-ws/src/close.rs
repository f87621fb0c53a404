//! `labchat_connections_closed_total{code}`: every ended connection, by how it ended. The labels
//! are a fixed set (a close code the server sends, `peer` when the client closed first, `gone`
//! when the peer vanished), so alerts can watch the close rate and the slow consumers (1013).

use crate::connection::{End, close};

/// Counts one ended connection.
pub(crate) fn count(end: End) {
    metrics::counter!("labchat_connections_closed_total", "code" => label(end)).increment(1);
}

fn label(end: End) -> &'static str {
    match end {
        End::Gone => "gone",
        End::PeerClosed => "peer",
        End::Close(code, _) => match code {
            close::GOING_AWAY => "1001",
            close::PROTOCOL_ERROR => "1002",
            close::INVALID_DATA => "1007",
            close::POLICY => "1008",
            close::TOO_BIG => "1009",
            close::SERVICE_RESTART => "1012",
            close::TRY_AGAIN_LATER => "1013",
            close::TOKEN_EXPIRED => "4001",
            close::FORBIDDEN => "4003",
            _ => "other",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_close_code_the_server_sends_has_its_own_label() {
        assert_eq!(label(End::Close(close::SERVICE_RESTART, "")), "1012");
        assert_eq!(label(End::Close(close::TRY_AGAIN_LATER, "")), "1013");
        assert_eq!(label(End::Close(4999, "")), "other");
        assert_eq!((label(End::Gone), label(End::PeerClosed)), ("gone", "peer"));
    }
}
