// Edits and deletes applied to a held message: the text replaced (with `editedAt`), or removed for
// a tombstone (with `deletedAt` and `deletedBy`; a tombstone keeps its id, seq and receipts).

import type { ChatMessage, MessageDeletedData, MessageEditedData } from './protocol.js';

/** Applies `messageEdited` to `m` (in place). */
export function applyEdit(m: ChatMessage, e: MessageEditedData): void {
  if (m.deletedAt) return;
  m.message = e.message;
  m.editedAt = e.editedAt;
}

/** Applies `messageDeleted` to `m` (in place): it becomes a tombstone. */
export function applyDelete(m: ChatMessage, d: MessageDeletedData): void {
  delete m.message;
  delete m.editedAt;
  m.deletedAt = d.deletedAt;
  m.deletedBy = d.deletedBy;
}

/** Applies the message as the server stores it now (an ack of editMessage or deleteMessage). */
export function applyStored(m: ChatMessage, stored: ChatMessage): void {
  if (stored.deletedAt && stored.deletedBy) {
    applyDelete(m, { requestId: stored.requestId, messageId: stored.id, deletedAt: stored.deletedAt, deletedBy: stored.deletedBy, seq: stored.seq });
  } else if (stored.message !== undefined && stored.editedAt) {
    applyEdit(m, { requestId: stored.requestId, messageId: stored.id, message: stored.message, editedAt: stored.editedAt, seq: stored.seq });
  }
}
