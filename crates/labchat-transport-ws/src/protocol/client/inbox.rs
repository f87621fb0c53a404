//! `inbox {limit?, before?}`: a page of the user's rooms with their unread counts.

use labchat_domain::{InboxCursor, InboxLimit, InboxQuery};
use serde_json::Value;

use super::parse::{Fail, Field, dto};
use crate::context::Server;
use crate::errors::WireError;
use crate::protocol::{self, ServerEvent};
use crate::session::{Failure, Outcome, Session};

/// `inbox`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Inbox {
    /// The page: its size and where it starts.
    pub query: InboxQuery,
}

/// The fields `inbox` reads.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct Data {
    limit: Field,
    before: Field,
}

impl Inbox {
    pub(crate) fn parse(data: Value) -> Result<Self, Fail> {
        let data = dto::<Data>(data)?;
        let fail = |m: String| (m, None);
        let limit = match data.limit.non_null() {
            None => InboxLimit::DEFAULT,
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|n| InboxLimit::new(n).ok())
                .ok_or_else(|| fail(format!("field data.limit must be an integer from 1 to {}", InboxLimit::MAX)))?,
            Some(_) => {
                return Err(fail(format!("field data.limit must be an integer from 1 to {}", InboxLimit::MAX)));
            }
        };
        let bad_cursor = || fail(crate::errors::NOT_AN_INBOX_CURSOR.into());
        let before = match data.before.non_null() {
            None => None,
            Some(Value::String(s)) => Some(InboxCursor::parse(&s).map_err(|_| bad_cursor())?),
            Some(_) => return Err(bad_cursor()),
        };
        Ok(Self { query: InboxQuery { limit, before } })
    }

    pub(crate) async fn apply(
        &self,
        session: &mut Session,
        server: &Server,
        id: Option<&Value>,
    ) -> Result<Outcome, Failure> {
        let page = server.chat().inbox(&session.principal.user, self.query).await.map_err(WireError::from)?;
        // Sent without an id too: it is the only frame that carries the result.
        let budget = server.config().reply_budget();
        session.sink.reply(ServerEvent::Ack, protocol::inbox_ack(&page, budget, id));
        Ok(Outcome::Done)
    }
}
