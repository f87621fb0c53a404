//! How a connection ends: the close codes the server sends (see docs/protocol.md), [`End`], and
//! `labchat_connections_closed_total{code}`, every ended connection by how it ended. The labels
//! are a fixed set (a close code the server sends, `peer` when the client closed first, `gone`
//! when the peer vanished), so alerts can watch the close rate and the slow consumers (1013).

pub(crate) const GOING_AWAY: u16 = 1001;
pub(crate) const PROTOCOL_ERROR: u16 = 1002;
pub(crate) const INVALID_DATA: u16 = 1007;
pub(crate) const POLICY: u16 = 1008;
pub(crate) const TOO_BIG: u16 = 1009;
pub(crate) const SERVICE_RESTART: u16 = 1012;
pub(crate) const TRY_AGAIN_LATER: u16 = 1013;
pub(crate) const TOKEN_EXPIRED: u16 = 4001;
pub(crate) const FORBIDDEN: u16 = 4003;

/// Why a connection's loop ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// The peer vanished, or takes no bytes; nothing more to send.
    Gone,
    /// The peer sent a close frame; the reply is flushed, then the connection dropped.
    PeerClosed,
    /// Close with this code and reason.
    Close(u16, &'static str),
}

/// Counts one ended connection.
pub(crate) fn count(end: End) {
    metrics::counter!("labchat_connections_closed_total", "code" => label(end)).increment(1);
}

fn label(end: End) -> &'static str {
    match end {
        End::Gone => "gone",
        End::PeerClosed => "peer",
        End::Close(code, _) => match code {
            GOING_AWAY => "1001",
            PROTOCOL_ERROR => "1002",
            INVALID_DATA => "1007",
            POLICY => "1008",
            TOO_BIG => "1009",
            SERVICE_RESTART => "1012",
            TRY_AGAIN_LATER => "1013",
            TOKEN_EXPIRED => "4001",
            FORBIDDEN => "4003",
            _ => "other",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_close_code_the_server_sends_has_its_own_label() {
        assert_eq!(label(End::Close(SERVICE_RESTART, "")), "1012");
        assert_eq!(label(End::Close(TRY_AGAIN_LATER, "")), "1013");
        assert_eq!(label(End::Close(4999, "")), "other");
        assert_eq!((label(End::Gone), label(End::PeerClosed)), ("gone", "peer"));
    }
}
