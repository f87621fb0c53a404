//! The edit and delete use cases: the sender fixes a message's text within the edit window; the
//! sender or a LAB user deletes a message, which stays as a tombstone (its text removed, its seq
//! and receipts kept). Each is decided by the domain (`Message::edit`, `Message::delete`),
//! stored, then published to the room, under the room's order lock like every room event.

use labchat_domain::{Message, MessageId, MessageText, RequestId, RoomEvent, User};

use super::Chat;
use crate::ChatError;

impl Chat {
    /// Replaces the text of message `id` of `request`, sent by `user`, with `text` (validated by
    /// the caller with the same limits as a send), and tells the room (`MessageEdited`). Returns
    /// the message as stored now. Refused ([`ChatError::EditRefused`]) for someone else's
    /// message, a deleted one, or past the edit window ([`Chat::with_edit_window`]); an id that
    /// is no message of the room is [`ChatError::NoSuchMessage`]. Unread counts do not change.
    pub async fn edit(
        &self,
        user: &User,
        request: RequestId,
        id: MessageId,
        text: MessageText,
    ) -> Result<Message, ChatError> {
        self.authorize(user, request).await?;
        let _order = self.room_order(request).await;
        let mut message = self.stored(request, id).await?;
        let now = self.clock.now();
        message.edit(request, user.id(), text, now, self.edit_window).map_err(ChatError::EditRefused)?;
        if !self.store.update_message(&message).await.map_err(ChatError::store("editing a message"))? {
            // Deleted (or gone) since it was read.
            return Err(ChatError::EditRefused(labchat_domain::EditRefused::Deleted));
        }
        self.publish(RoomEvent::MessageEdited(message.clone())).await;
        Ok(message)
    }

    /// Deletes message `id` of `request` as `user` (its sender, or a LAB user), and tells the
    /// room (`MessageDeleted`): the text is removed from the store, the message stays as a
    /// tombstone, and it is unread for no one any more. Returns the tombstone. Deleting a
    /// tombstone again succeeds and changes nothing (a retried delete), publishing nothing.
    pub async fn delete(&self, user: &User, request: RequestId, id: MessageId) -> Result<Message, ChatError> {
        self.authorize(user, request).await?;
        let _order = self.room_order(request).await;
        let mut message = self.stored(request, id).await?;
        let now = self.clock.now();
        if !message.delete(request, user, now).map_err(ChatError::DeleteRefused)? {
            return Ok(message);
        }
        if !self.store.update_message(&message).await.map_err(ChatError::store("deleting a message"))? {
            // Deleted meanwhile (through another node): answer with the tombstone as stored.
            return self.stored(request, id).await;
        }
        // Stored is what counts: a failed count is recounted later (see `recount`).
        if let Err(e) = self.store.count_deleted(&message).await {
            self.recounts.failed(request, &message.sender_id, &e);
            for reader in message.read_by() {
                self.recounts.failed(request, &reader.user, &e);
            }
        }
        self.publish(RoomEvent::MessageDeleted(message.clone())).await;
        Ok(message)
    }

    /// The stored message `id` of `request`, or [`ChatError::NoSuchMessage`].
    async fn stored(&self, request: RequestId, id: MessageId) -> Result<Message, ChatError> {
        self.store
            .message(request, id)
            .await
            .map_err(ChatError::store("reading a message"))?
            .ok_or(ChatError::NoSuchMessage)
    }
}
