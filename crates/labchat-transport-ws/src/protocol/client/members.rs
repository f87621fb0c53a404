//! `members {requestId, after?}`: a page of a room's members.

use labchat_domain::{RequestId, UserId};
use serde_json::Value;

use super::parse::{Fail, Field, Room, dto};
use crate::context::Server;
use crate::errors::WireError;
use crate::protocol::{self, ServerEvent};
use crate::session::{Failure, Outcome, Session};

/// `members`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Members {
    /// The room.
    pub request_id: RequestId,
    /// The page starts after this user id (the previous page's `next`).
    pub after: Option<UserId>,
}

/// The fields `members` reads.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct Data {
    #[serde(flatten)]
    room: Room,
    after: Field,
}

impl Members {
    pub(crate) fn parse(data: Value) -> Result<Self, Fail> {
        let data = dto::<Data>(data)?;
        let request_id = data.room.request_id()?;
        let fail = |m: String| (m, Some(request_id));
        let after = match data.after.non_null() {
            None => None,
            Some(Value::String(s)) => Some(UserId::parse(s).map_err(|e| fail(format!("field data.after: {e}")))?),
            Some(_) => return Err(fail("field data.after must be the `next` of an earlier members page".into())),
        };
        Ok(Self { request_id, after })
    }

    pub(crate) async fn apply(
        &self,
        session: &mut Session,
        server: &Server,
        id: Option<&Value>,
    ) -> Result<Outcome, Failure> {
        let page = server
            .chat()
            .members(&session.principal.user, self.request_id, self.after.as_ref())
            .await
            .map_err(WireError::from)?;
        // Sent without an id too: it is the only frame that carries the result.
        session.sink.reply(ServerEvent::Ack, protocol::members_ack(self.request_id, &page, id));
        Ok(Outcome::Done)
    }
}
