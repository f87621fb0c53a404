//! Posting a message: stored, then broadcast; a post whose outcome is unknown is followed up
//! (`follow_up.rs`).

use labchat_domain::{ClientMessageId, Message, MessageText, NewMessage, RequestId, RoomEvent, User};

use super::{Chat, Posted};
use crate::{ChatError, Inserted};

impl Chat {
    /// Stores a message from `user` and then broadcasts it to the room. With a client message id
    /// already used by this user in this room, stores and broadcasts nothing: a repeat of that
    /// send (the same text, [`Message::repeats`]) returns the original, another text fails with
    /// [`ChatError::ClientMessageIdReused`].
    pub async fn post(
        &self,
        user: &User,
        request: RequestId,
        text: MessageText,
        client_message_id: Option<ClientMessageId>,
    ) -> Result<Posted, ChatError> {
        self.authorize(user, request).await?;
        let _order = self.room_order(request).await;
        let now = self.clock.now();
        let message = Message::new(NewMessage {
            id: self.ids.next(now),
            request_id: request,
            sender_id: user.id().clone(),
            sender_role: user.role(),
            text,
            created_at: now,
            client_message_id,
        });
        let inserted = self.store.insert_message(&message).await.inspect_err(|e| {
            self.may_have_counted(request, user, e);
            self.follow_ups.failed(request, message.id, e);
        });
        match inserted.map_err(ChatError::store("posting a message"))? {
            Inserted::Duplicate(original) if message.repeats(&original) => {
                Ok(Posted { message: original, duplicate: true })
            }
            Inserted::Duplicate(_) => Err(ChatError::ClientMessageIdReused),
            Inserted::New(seq) => {
                let message = message.with_seq(seq);
                // Stored is what counts: a failed count is recounted later (see `recount`).
                if let Err(e) = self.store.count_posted(&message, seq).await {
                    self.recounts.failed(request, user.id(), &e);
                }
                self.publish(RoomEvent::MessagePosted(message.clone())).await;
                Ok(Posted { message, duplicate: false })
            }
        }
    }

    /// How many posts whose outcome is unknown are followed up (see `follow_up.rs`); 0 when
    /// every insert answered, or failed for good.
    pub fn posts_followed_up(&self) -> usize {
        self.follow_ups.pending()
    }
}
