//! `history {requestId, before?, after?, limit?}`: a page of a room's messages.

use labchat_domain::{Cursor, HistoryLimit, RequestId};
use serde_json::Value;

use super::parse::{Fail, Field, Room, dto, optional_id};
use crate::context::Server;
use crate::errors::WireError;
use crate::protocol::{self, AckData, Keep, ServerEvent};
use crate::session::{Failure, Outcome, Session};

/// `history`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct History {
    /// The room.
    pub request_id: RequestId,
    /// Where the page starts: the latest messages (default), `before` a message (scrolling
    /// back) or `after` one (catching up, in the room's order).
    pub cursor: Cursor,
    /// Page size.
    pub limit: Option<HistoryLimit>,
}

/// The fields `history` reads.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct Data {
    #[serde(flatten)]
    room: Room,
    before: Field,
    after: Field,
    limit: Field,
}

impl History {
    pub(crate) fn parse(data: Value) -> Result<Self, Fail> {
        let data = dto::<Data>(data)?;
        let request_id = data.room.request_id()?;
        let fail = |m: String| (m, Some(request_id));
        let before = optional_id(data.before, "before").map_err(fail)?;
        let after = optional_id(data.after, "after").map_err(fail)?;
        let cursor = match (before, after) {
            (None, None) => Cursor::Latest,
            (Some(id), None) => Cursor::Before(id),
            (None, Some(id)) => Cursor::After(id),
            (Some(_), Some(_)) => {
                return Err(fail("fields data.before and data.after exclude each other; send one of them".into()));
            }
        };
        let limit = match data.limit.non_null() {
            None => None,
            Some(Value::Number(n)) => {
                // Negative and fractional numbers are out of range like 0.
                let n = n.as_u64().and_then(|n| usize::try_from(n).ok()).unwrap_or(0);
                Some(HistoryLimit::new(n).map_err(|e| fail(format!("field data.limit: {e}")))?)
            }
            Some(_) => return Err(fail("field data.limit must be a positive integer".into())),
        };
        Ok(Self { request_id, cursor, limit })
    }

    pub(crate) async fn apply(
        &self,
        session: &mut Session,
        server: &Server,
        id: Option<&Value>,
    ) -> Result<Outcome, Failure> {
        let Self { request_id, cursor, limit } = self;
        let page = server
            .chat()
            .history(&session.principal.user, *request_id, *cursor, *limit)
            .await
            .map_err(WireError::from)?;
        let budget = server.config().reply_budget();
        session.sink.reply(
            ServerEvent::RoomHistory,
            protocol::room_history(*request_id, &page, Keep::for_cursor(*cursor), budget, id),
        );
        session.ack(AckData::Room(*request_id), id);
        Ok(Outcome::Done)
    }
}
