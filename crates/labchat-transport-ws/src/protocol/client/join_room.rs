//! `joinRoom {requestId, after?}`: subscribe to a room and get its history (the latest, or what
//! follows `after`), then its live events, in the room's order.

use std::sync::Arc;

use labchat_core::{JoinError, RoomSink};
use labchat_domain::{Cursor, MessageId, RequestId};
use serde_json::Value;

use super::parse::{Fail, Field, Room, dto, optional_id};
use crate::context::Server;
use crate::errors::WireError;
use crate::outbound::Release;
use crate::protocol::{self, AckData, Keep, ServerEvent};
use crate::session::{Failure, Outcome, Session};

/// `joinRoom`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct JoinRoom {
    /// The room.
    pub request_id: RequestId,
    /// Only send history after this message.
    pub after: Option<MessageId>,
}

/// The fields `joinRoom` reads.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct Data {
    #[serde(flatten)]
    room: Room,
    after: Field,
}

impl JoinRoom {
    pub(crate) fn parse(data: Value) -> Result<Self, Fail> {
        let data = dto::<Data>(data)?;
        let request_id = data.room.request_id()?;
        let after = optional_id(data.after, "after").map_err(|m| (m, Some(request_id)))?;
        Ok(Self { request_id, after })
    }

    pub(crate) async fn apply(
        &self,
        session: &mut Session,
        server: &Server,
        id: Option<&Value>,
    ) -> Result<Outcome, Failure> {
        let Self { request_id, after } = self;
        let chat = server.chat();
        let max = server.config().max_rooms_per_connection;
        if !session.rooms.contains(request_id) && session.rooms.len() >= max {
            return Err(Failure::bad_request(format!("a connection may join at most {max} rooms; leave one first")));
        }
        let sink: Arc<dyn RoomSink> = Arc::clone(&session.sink) as Arc<dyn RoomSink>;
        let rejoin = session.rooms.contains(request_id);
        // The room's events that arrive between subscribing and queueing the history
        // (from other nodes) wait, so that they follow the history.
        session.sink.hold(*request_id);
        let joined = match chat.join(&session.principal.user, *request_id, *after, sink, rejoin).await {
            Ok(joined) => joined,
            Err(e) => {
                if matches!(e, JoinError::Busy { .. }) {
                    metrics::counter!("labchat_joins_refused_total").increment(1);
                }
                session.sink.release(*request_id, if rejoin { Release::Member } else { Release::Drop });
                return Err(WireError::from(e).into());
            }
        };
        if session.rooms.insert(*request_id) {
            metrics::gauge!("labchat_rooms_joined").increment(1.0);
        }
        // Queued while the room's order is held: first what changed on the messages up to
        // `after` (the replay: it concerns messages the client holds, and the page's unread
        // counts already include it), then the history, then live events. The replay is lossy
        // when cut (nothing pages it on), the page is not: the replay takes the reply's bytes
        // first, up to three quarters of them, and the page the rest; and the reply's frames
        // but the page's and the ack's.
        let (keep, config) = (Keep::for_cursor(after.map_or(Cursor::Latest, Cursor::After)), server.config());
        let budget = config.reply_budget().saturating_sub(protocol::join_fields_len(&joined.unread, after.is_some()));
        let (replay, stale_below) =
            protocol::replay(&joined.catch_up, budget / 4 * 3, config.reply_frames().saturating_sub(2));
        let replayed: usize = replay.iter().map(|(_, frame)| frame.len()).sum();
        for (event, frame) in replay {
            session.sink.reply(event, frame);
        }
        let (frame, has_more) = protocol::room_history_with_more(
            *request_id,
            &joined.history,
            keep,
            budget.saturating_sub(replayed),
            id,
            Some(&joined.members),
        );
        let changes = after.map(|_| stale_below);
        session.sink.reply(ServerEvent::RoomHistory, protocol::with_join_fields(frame, &joined.unread, changes));
        // A page after a message that stops short of the newest: the client pages on,
        // and the held messages past the page would leave a hole before them.
        let cut = after.is_some() && has_more;
        // Only a backplane delivers messages after a history that holds them.
        let late = chat.backplane().is_some();
        session.sink.release(*request_id, Release::Joined { covered: joined.covered, cut, late });
        drop(joined);
        session.ack(AckData::Room(*request_id), id);
        Ok(Outcome::Done)
    }
}
