// The wire types of labchat's protocol v1 (docs/protocol.md). Each interface mirrors one schema of
// docs/asyncapi.yaml's `components.schemas` (named in its comment); test/types.test.mjs checks
// every field and whether it is required against that file, so the contract has one source.

/** A 24-hex-digit object id (lowercase from the server). asyncapi: HexId. */
export type HexId = string;
/** RFC 3339 UTC time with milliseconds. asyncapi: Timestamp. */
export type Timestamp = string;
/** asyncapi: Role. */
export type Role = 'TEACHER' | 'LAB';
/** asyncapi: ErrorCode. */
export type ErrorCode =
  | 'BAD_REQUEST'
  | 'FORBIDDEN'
  | 'UNAVAILABLE'
  | 'INTERNAL'
  | 'RATE_LIMITED'
  | 'TOKEN_EXPIRED'
  | 'UNAUTHORIZED'
  | 'UNKNOWN_AFTER'
  | 'CLIENT_MESSAGE_ID_REUSED';

/** asyncapi: Receipt. */
export interface Receipt {
  userId: string;
  at: Timestamp;
}

/** A stored chat message with its receipts. A deleted message is a tombstone: no `message`, with
 * `deletedAt` and `deletedBy`; an edited one has `editedAt`. asyncapi: ChatMessage. */
export interface ChatMessage {
  id: HexId;
  requestId: HexId;
  /** The message's place in its room: 1, 2, 3, … with no holes. */
  seq: number;
  senderId: string;
  senderRole: Role;
  /** The text; absent on a tombstone (a deleted message). */
  message?: string;
  createdAt: Timestamp;
  clientMessageId?: string;
  /** When the text was last edited. */
  editedAt?: Timestamp;
  /** When the message was deleted (a tombstone). */
  deletedAt?: Timestamp;
  /** Who deleted it: the sender or a LAB user. */
  deletedBy?: string;
  deliveredTo: Receipt[];
  readBy: Receipt[];
}

/** A message of a room was edited. asyncapi: MessageEditedFrame's data. */
export interface MessageEditedData {
  requestId: HexId;
  messageId: HexId;
  message: string;
  editedAt: Timestamp;
  /** The edited message's own seq. */
  seq: number;
}

/** A message of a room was deleted (it stays as a tombstone). asyncapi: MessageDeletedFrame's data. */
export interface MessageDeletedData {
  requestId: HexId;
  messageId: HexId;
  deletedAt: Timestamp;
  deletedBy: string;
  /** The deleted message's own seq. */
  seq: number;
}

/** asyncapi: Member. */
export interface Member {
  userId: string;
  role: Role;
}

/** asyncapi: RoomHistoryData. */
export interface RoomHistoryData {
  requestId: HexId;
  messages: ChatMessage[];
  hasMore: boolean;
  unread?: number;
  firstUnreadId?: HexId | null;
  changesCut?: boolean;
  changesFrom?: number | null;
  members?: Member[];
  membersCount?: number;
  membersNext?: string | null;
}

/** The reply to `members`. asyncapi: AckMembers. */
export interface AckMembers {
  requestId: HexId;
  members: Member[];
  membersCount: number;
  next: string | null;
}

/** asyncapi: MembersChangedFrame's data. */
export interface MembersChangedData {
  requestId: HexId;
  joined: Member[];
  left: string[];
  membersCount: number;
}

/** `messagesDelivered` and `messageReads`. asyncapi: ReceiptsEventData. */
export interface ReceiptsEventData {
  requestId: HexId;
  userId: string;
  messages: HexId[];
  at: Timestamp;
}

/** asyncapi: AckRoom. */
export interface AckRoom {
  requestId: HexId;
}

/** asyncapi: AckMarked. */
export interface AckMarked {
  requestId: HexId;
  messages: HexId[];
}

/** One room of the inbox; also the data of `inboxUpdate`. asyncapi: InboxRow. */
export interface InboxRow {
  requestId: HexId;
  lastMessage: ChatMessage;
  unread: number;
  lastActivityAt: Timestamp;
}

/** The reply to `inbox`. asyncapi: AckInbox. */
export interface AckInbox {
  rooms: InboxRow[];
  next: string | null;
}

/** asyncapi: AckRefreshed. */
export interface AckRefreshed {
  expiresAt: Timestamp;
}

/** asyncapi: ErrorData. */
export interface ErrorData {
  code: ErrorCode;
  message: string;
  event?: string;
  requestId?: HexId;
  retryable: boolean;
  retryAfterMs?: number;
}

/** `typing` from the server. asyncapi: SomeoneInRoom. */
export interface SomeoneInRoom {
  requestId: HexId;
  userId: string;
  role: Role;
}

/** asyncapi: MemberLeftData. */
export interface MemberLeftData {
  requestId: HexId;
  userId: string;
}

/** Every server event with its data. */
export interface ServerEvents {
  message: ChatMessage;
  roomHistory: RoomHistoryData;
  messagesDelivered: ReceiptsEventData;
  messageReads: ReceiptsEventData;
  messageEdited: MessageEditedData;
  messageDeleted: MessageDeletedData;
  inboxUpdate: InboxRow;
  typing: SomeoneInRoom;
  memberJoined: SomeoneInRoom;
  memberLeft: MemberLeftData;
  membersChanged: MembersChangedData;
  ack: unknown;
  error: ErrorData;
}

/** Every client event with its data. */
export interface ClientEvents {
  joinRoom: { requestId: HexId; after?: HexId };
  leaveRoom: { requestId: HexId };
  message: { requestId: HexId; message: string; clientMessageId?: string };
  editMessage: { requestId: HexId; messageId: HexId; message: string };
  deleteMessage: { requestId: HexId; messageId: HexId };
  ackMessages: { requestId: HexId; messages: HexId[] };
  readMessages: { requestId: HexId; messages: HexId[] };
  history: { requestId: HexId; before?: HexId; after?: HexId; limit?: number };
  refreshToken: { token: string };
  typing: { requestId: HexId };
  members: { requestId: HexId; after?: string };
  inbox: { limit?: number; before?: string };
  subscribeInbox: Record<string, never>;
  unsubscribeInbox: Record<string, never>;
}

/** The ack data of each client event. */
export interface AckData {
  joinRoom: AckRoom;
  leaveRoom: AckRoom;
  message: ChatMessage;
  editMessage: ChatMessage;
  deleteMessage: ChatMessage;
  ackMessages: AckMarked;
  readMessages: AckMarked;
  history: AckRoom;
  refreshToken: AckRefreshed;
  typing: AckRoom;
  members: AckMembers;
  inbox: AckInbox;
  subscribeInbox: Record<string, never>;
  unsubscribeInbox: Record<string, never>;
}

/** Close codes the server sends (asyncapi: CloseCode), plus 1012 (a node restarting). */
export const CloseCodes = {
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  INVALID_DATA: 1007,
  POLICY: 1008,
  TOO_BIG: 1009,
  RESTART: 1012,
  TRY_AGAIN_LATER: 1013,
  TOKEN_EXPIRED: 4001,
  FORBIDDEN: 4003,
} as const;
