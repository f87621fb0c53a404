//! Seeding the in-memory store for the examples: a teacher's "hello" in a room.

use std::error::Error;

use labchat_core::{ChatStore, Inserted, MessageIdGenerator};
use labchat_domain::{Message, MessageId, MessageText, NewMessage, RequestId, Role, Timestamp, UserId};
use labchat_memory::MemoryStore;

/// Stores (and counts) a "hello" of `teacher` in `room` at `at`; returns its id.
pub async fn hello(
    memory: &MemoryStore,
    ids: &MessageIdGenerator,
    room: RequestId,
    teacher: &UserId,
    at: Timestamp,
) -> Result<MessageId, Box<dyn Error>> {
    let m = Message::new(NewMessage {
        id: ids.next(at),
        request_id: room,
        sender_id: teacher.clone(),
        sender_role: Role::Teacher,
        text: MessageText::parse("hello", 100)?,
        created_at: at,
        client_message_id: None,
    });
    if let Inserted::New(seq) = memory.insert_message(&m).await? {
        memory.count_posted(&m, seq).await?;
    }
    Ok(m.id)
}
