//! `unsubscribeInbox {}`: stop receiving `inboxUpdate` events.

use serde_json::Value;

use crate::context::Server;
use crate::protocol::AckData;
use crate::session::{Failure, Outcome, Session};

/// `unsubscribeInbox` (it reads no field).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct UnsubscribeInbox;

impl UnsubscribeInbox {
    pub(crate) async fn apply(
        &self,
        session: &mut Session,
        server: &Server,
        id: Option<&Value>,
    ) -> Result<Outcome, Failure> {
        server.chat().unsubscribe_inbox(session.sink.sink_id()).await;
        session.ack(AckData::Empty, id);
        Ok(Outcome::Done)
    }
}
