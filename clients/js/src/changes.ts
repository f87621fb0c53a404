// Edits and deletes of held messages: the new form of a message after `messageEdited` /
// `messageDeleted`, and the changes that reach a room before the message they change.

import type { ChatMessage, MessageDeletedData, MessageEditedData } from './protocol.js';

/** A change of one message, as the server broadcast it. */
export type Change = { kind: 'edited'; data: MessageEditedData } | { kind: 'deleted'; data: MessageDeletedData };

/** The message after the change: a new object (the old one is left as it was). */
export function applyChange(m: ChatMessage, change: Change): ChatMessage {
  if (change.kind === 'edited') {
    // An edit never revives a tombstone (the server refuses to edit a deleted message).
    if (m.deletedAt !== undefined) return m;
    return { ...m, message: change.data.message, editedAt: change.data.editedAt };
  }
  // A tombstone keeps neither the text nor the time of an edit, as the server's.
  const { message: _text, editedAt: _edited, ...rest } = m;
  return { ...rest, deletedAt: change.data.deletedAt, deletedBy: change.data.deletedBy };
}

/** Whether `m` counts as unread for `userId`: not sent by them, not read by them, not deleted. */
export function isUnreadFor(m: ChatMessage, userId: string): boolean {
  return m.deletedAt === undefined && m.senderId !== userId && !m.readBy.some((r) => r.userId === userId);
}
