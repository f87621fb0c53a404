//! `subscribeInbox {}`: receive `inboxUpdate` events for the user's rooms.

use std::sync::Arc;

use labchat_core::InboxSink;
use serde_json::Value;

use crate::context::Server;
use crate::protocol::AckData;
use crate::session::{Failure, Outcome, Session};

/// `subscribeInbox` (it reads no field).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SubscribeInbox;

impl SubscribeInbox {
    pub(crate) async fn apply(
        &self,
        session: &mut Session,
        server: &Server,
        id: Option<&Value>,
    ) -> Result<Outcome, Failure> {
        server.chat().subscribe_inbox(&session.principal.user, Arc::clone(&session.sink) as Arc<dyn InboxSink>).await;
        session.ack(AckData::Empty, id);
        Ok(Outcome::Done)
    }
}
