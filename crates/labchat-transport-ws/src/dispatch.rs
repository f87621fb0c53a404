//! One text frame of a connection: decode it, hand the command to its event's `apply` (a
//! thin, exhaustive match: each event's work is in its own file under `protocol/client/`), and
//! turn a failure into its `error` frame.

use labchat_domain::ReceiptKind;

use crate::context::Server;
use crate::protocol::{self, Command, ErrorCode, ErrorFrame, Inbound};
use crate::session::{Failure, Outcome, Session};

impl Session {
    /// Handles one text frame: its reply (or `error` frame) is queued on the sink.
    pub(crate) async fn handle(&mut self, server: &Server, text: &str) -> Outcome {
        let decoded = protocol::decode(text, &server.config().decode);
        let event = match &decoded {
            Ok(i) => i.event.as_str(),
            Err(_) => "invalid",
        };
        metrics::counter!("labchat_frames_in_total", "event" => event).increment(1);
        let inbound = match decoded {
            Ok(i) => i,
            Err(bad) => {
                self.sink.reply_error(&ErrorFrame {
                    code: ErrorCode::BadRequest,
                    message: &bad.message,
                    event: bad.event.as_deref(),
                    request_id: bad.request_id,
                    id: bad.id.as_ref(),
                    retry_after_ms: None,
                    retryable: false,
                });
                return Outcome::Done;
            }
        };
        match self.dispatch(server, &inbound).await {
            Ok(outcome) => outcome,
            Err(Failure { code, message, close, lost_access, retry_after_ms }) => {
                self.sink.reply_error(&ErrorFrame {
                    code,
                    message: &message,
                    event: Some(inbound.event.as_str()),
                    request_id: inbound.command.request_id(),
                    id: inbound.id.as_ref(),
                    retry_after_ms,
                    retryable: code.retryable(Some(&inbound.command)),
                });
                // Access to the room was refused (decided where the error was mapped): stop
                // listening to it too.
                if lost_access && let Some(room) = inbound.command.request_id() {
                    Box::pin(self.lost_access(server, vec![room])).await;
                }
                close.map_or(Outcome::Done, Outcome::Close)
            }
        }
    }

    /// Runs the command's own `apply` (in its event's file under `protocol/client/`).
    async fn dispatch(&mut self, server: &Server, inbound: &Inbound) -> Result<Outcome, Failure> {
        let id = inbound.id.as_ref();
        match &inbound.command {
            Command::JoinRoom(c) => c.apply(self, server, id).await,
            Command::LeaveRoom(c) => c.apply(self, server, id).await,
            Command::Message(c) => c.apply(self, server, id).await,
            Command::AckMessages(c) => c.apply(ReceiptKind::Delivered, self, server, id).await,
            Command::ReadMessages(c) => c.apply(ReceiptKind::Read, self, server, id).await,
            Command::History(c) => c.apply(self, server, id).await,
            Command::RefreshToken(c) => c.apply(self, server, id),
            Command::Inbox(c) => c.apply(self, server, id).await,
            Command::Members(c) => c.apply(self, server, id).await,
            Command::SubscribeInbox(c) => c.apply(self, server, id).await,
            Command::UnsubscribeInbox(c) => c.apply(self, server, id).await,
            Command::Typing(c) => c.apply(self, server, id).await,
            Command::EditMessage(c) => c.apply(self, server, id).await,
            Command::DeleteMessage(c) => c.apply(self, server, id).await,
        }
    }
}

#[cfg(test)]
mod tests;
