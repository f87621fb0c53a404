//! # labchat-store-mongo
//!
//! labchat's [`ChatStore`](labchat_core::ChatStore) on MongoDB (5.0 or later), over the official
//! `mongodb` driver on tokio. Build it with [`MongoStore::connect`] from [`MongoSettings`]. BSON
//! and the driver stay inside this crate: callers see only domain types and
//! [`StoreError`](labchat_core::StoreError).
//!
//! ## Collections
//!
//! All of them live in one database ([`MongoSettings::database`], default `labchat`).
//!
//! **Requests** ([`MongoSettings::requests_collection`], default `requests`) belong to the wider
//! lab system: labchat only reads them, by `_id` (an ObjectId), and never creates indexes on
//! them. The creator field ([`MongoSettings::creator_field`], default `createdBy`; a dotted path
//! reaches into sub-documents) holds an ObjectId or a string; an ObjectId creator is the user
//! whose token `sub` is its 24 lowercase hex digits. A request whose creator field is missing,
//! null or holds anything else has no creator: no teacher owns it, lab staff may still act on it
//! (logged as a warning with the request id).
//!
//! **Messages** ([`MESSAGES_COLLECTION`]), one document per message:
//!
//! | field | value |
//! | --- | --- |
//! | `_id` | the message id, an ObjectId |
//! | `seq` | the message's position in its room (1, 2, 3, …), a 64-bit integer: the room's order |
//! | `order` | the message id as 24 lowercase hex digits (kept for older readers; labchat orders by `seq`) |
//! | `requestId` | the request (room) id, 24 lowercase hex digits |
//! | `senderId`, `senderRole` | the sender's user id and role (`TEACHER` or `LAB`) |
//! | `text` | the text, as sent or last edited; absent on a deleted message (removed, not hidden) |
//! | `createdAt` | a BSON date (milliseconds) |
//! | `editedAt` | a BSON date, the last edit; absent when never edited, and on a deleted message |
//! | `deletedAt`, `deletedBy` | a BSON date and a user id, when and by whom the message was deleted; absent otherwise |
//! | `clientMessageId` | the client's idempotency id; absent when none was given |
//! | `idem` | the idempotency key `<requestId>:<byte length of senderId>:<senderId>:<clientMessageId>`, or, without a client id, the message's own hex id |
//!
//! Indexes: `requestId_1_seq_1`, unique, on `{requestId: 1, seq: 1}`, partial on
//! `{seq: {$exists: true}}`, makes MongoDB the sequencer of every room (see below) and serves
//! every history page (one range query on `seq`, sorted, limited to the page size plus one to
//! learn `has_more`; a cursor's seq is read first, by `_id`); `idem_1`, unique, on `{idem: 1}`
//! makes a send with a client message id idempotent even under concurrent retries: the second
//! insert fails with a duplicate key and gets the original back; `requestId_1_order_-1` on
//! `{requestId: 1, order: -1}` is kept for older readers.
//!
//! **Receipts** ([`RECEIPTS_COLLECTION`]), one document per message, kind and user:
//!
//! | field | value |
//! | --- | --- |
//! | `_id` | `<messageId>:<kind>:<userId>`, so a receipt exists at most once |
//! | `messageId`, `requestId` | 24 lowercase hex digits |
//! | `kind` | `delivered` or `read` |
//! | `userId` | who received or read the message |
//! | `at` | a BSON date (milliseconds) |
//!
//! Index: `messageId_1` on `{messageId: 1}`, for loading the receipts of a history page in one
//! query; a message's receipts of each kind come oldest first (ties by user id). Marking finds
//! the eligible messages in one query, then inserts all their receipts with one unordered
//! `insert_many`: a duplicate `_id` means "already marked", every other document is newly
//! marked. Marking as read inserts the delivered receipt too.
//!
//! **Room summaries** ([`ROOMS_COLLECTION`]) and **counters** ([`SEEN_COLLECTION`]) are what
//! the inbox reads, so that an inbox page never scans messages:
//!
//! | `chatRooms` field | value |
//! | --- | --- |
//! | `_id`, `requestId` | the room's request id, 24 lowercase hex digits |
//! | `lastSeq` | the room's highest seq: its number of messages (seqs are dense) |
//! | `lastActivityAt` | the last message's creation time, milliseconds since the epoch (an integer) |
//! | `lastMessageId` | the last message's id, an ObjectId |
//! | `deleted` | how many of the room's messages were deleted (absent: 0) |
//! | `gone` | `true` once a LAB inbox page found the request deleted (LAB pages skip it in their query); `false` again at the room's next message |
//!
//! | `chatSeen` field | value |
//! | --- | --- |
//! | `_id` | `<requestId>:<userId>` |
//! | `requestId`, `userId` | the room and the user |
//! | `seen` | how many of the room's messages not deleted the user sent or read |
//! | `upTo` | a seq up to which every message of the room is sent, read by the user or deleted (absent: 0); `first_unread` reads on from there and moves it forward |
//!
//! A user's unread count is `lastSeq - deleted - seen`. After a message is stored, `count_posted` moves
//! its room's summary to it with an upsert filtered on `lastSeq < seq` (a duplicate-key refusal
//! means a later message is already there: summaries only move forward, whatever order nodes
//! finish in) and increments the sender's counter, both at once; after a read, `count_read`
//! increments the reader's counter by the number newly read. An edit or a deletion
//! (`update_message`) reads the message and writes it back whole with a replacement filtered on
//! `deletedAt` being absent, so a deleted message never changes again; after a deletion,
//! `count_deleted` increments the summary's `deleted` and decrements the counters of the sender
//! and of each reader. These writes follow the message's: one that fails leaves a count off,
//! never a message, until `recount` sets the summary from the room's last message and its
//! deleted ones, and the counter from the user's messages and read receipts, deleted messages
//! left out (a count of each). Index:
//! `lastActivityAt_-1_requestId_-1` serves the inbox order (latest activity first, ties by
//! request id descending). A TEACHER's inbox first reads the requests whose creator
//! field names them (as a string or an ObjectId; an index on that field of the requests
//! collection, which labchat does not create, keeps this cheap) and keeps those the access rule
//! (`Request::authorize`, over each request read as for a join) lets them act on, so that a
//! creator field holding an array, which the query matches, is no creator in the inbox either; a LAB inbox checks that the
//! requests of a page still exist. At start-up, until that index exists, rooms with messages but
//! no summary get theirs (and their counters) built from their messages and read receipts.
//!
//! References inside labchat's collections are hex strings rather than ObjectIds, and receipts
//! are documents rather than arrays inside messages, so that the same queries also run on the
//! MongoDB wire-protocol test server used by the tests (see `scripts/mongo-test-server.sh`).
//! Indexes are created, idempotently, by [`MongoStore::connect`].
//!
//! The catch-up read (what changed since a client's last message, `catch_up.rs`) finds the
//! receipts marked, and the messages edited or deleted, since an instant by a range on their
//! times (indexes `requestId_1_at_1` on the receipts, partial `requestId_1_editedAt_1` and
//! `requestId_1_deletedAt_1` on the messages), then compares the times again itself: the test
//! server compares dates only to the second.
//!
//! The quiet-room check of a node with a backplane asks for many rooms' highest seqs since an
//! instant at once (`latest.rs`): for many rooms, the stamps of the deployment's messages since
//! that instant (covered by `createdAt_1_requestId_1_seq_1`) while they are fewer than the
//! rooms, otherwise reads of the rooms (covered by `requestId_1_createdAt_1_seq_1`). The maximum
//! is taken here.
//!
//! ## Failures and time bounds
//!
//! Every driver call is bounded by [`MongoSettings::op_timeout`] (the driver's server-selection
//! and connect timeouts are capped by it as well). An unreachable or silent server, a timeout,
//! or a transient server state gives [`StoreError::Unavailable`](labchat_core::StoreError); bad
//! data and every other failure gives [`StoreError::Internal`](labchat_core::StoreError).
//!
//! ## Seqs: one order per room
//!
//! A message is stored with its room's next seq, and the unique index `requestId_1_seq_1`
//! arbitrates between nodes: a store inserts with the next seq it believes free (it caches the
//! last seq it knows stored per room; on a miss, one indexed query reads the room's highest),
//! and when the index refuses that seq (another node took it) it reloads the room's highest seq
//! and tries again, up to 64 times, then answers [`StoreError::Unavailable`](labchat_core::StoreError).
//! A refusal by the seq index is told apart from one by `idem_1` or `_id` (a repeated send, a
//! taken id) by the index the server names, or, when it names none, by looking for the id or
//! idempotency key. Within one node, inserts into a room go one at a time, so seqs collide only
//! between nodes. A seq exists only once its message is stored, so no call, even one that fails
//! or times out, leaves a hole.
//!
//! **Migration.** [`MongoStore::connect`] first gives every message stored before seqs existed
//! (no `seq` field) its position in its room, in `order`, idempotently and safely when several
//! nodes start at once, and only then creates the seq index; once the index exists, later
//! start-ups skip this step. Stop older labchat nodes before starting this one: a message an
//! older node writes afterwards has no seq and is not shown in history.
//!
//! ## Group commit of message inserts
//!
//! With [`MongoSettings::batch_inserts`] (the default), message inserts go through one background
//! task: while one batch is being stored, the messages that arrive queue up, and the next batch
//! stores all of them (up to 256), each with its room's next seq, with one *ordered*
//! `insert_many`. The server stores an ordered batch one document after the other and stops at
//! the first refused one, so what is stored is always a prefix of the batch (no hole, even when
//! the call times out midway); after a refusal the rest get fresh seqs and are sent again. There
//! is no timer: a lone message is stored at once. Every caller gets its own answer (stored with
//! its seq, a repeat of an earlier message, or a failure) only after its message is stored, and a
//! caller's wait, queueing included, is bounded by the operation timeout; a message whose caller
//! gave up before its batch was sent is not stored. Since the chat use case keeps one write per
//! room in flight and acknowledges and broadcasts only after the store answers, the order within
//! a room is kept. With many rooms posting at once this stores several times as many messages
//! per second as one insert per message (see `examples/insert_throughput.rs`).
//!
//! The counts each stored message then needs (its room's summary moved to it, its sender's
//! counter grown by one) are written together the same way (`tally.rs`): the posts waiting share
//! one unordered `update` command of the summaries, one statement per room at its latest post,
//! and one of the counters, one statement per counter by the posts it counts. Each caller is
//! answered from its own statements, and its wait is bounded as an insert's: a count whose
//! caller gave up before its batch was sent is not written. So a batch of posts costs one insert
//! and two updates (one more when a summary upsert is refused: see `summary.rs`). These `update` commands carry the database's write concern but, unlike the
//! driver's writes, are not retried after a failover: their posts' counts fail, and the chat use
//! case recounts them (`ChatStore::recount`).
//!
//! ## Coalesced point reads
//!
//! The reads that many connections make at once when a node's clients come back together (a
//! join's request, a room's unread count, a history cursor's seq) are each one background task
//! (`gather.rs`): callers queue their key, and every read waiting when a query can start is
//! answered by one `$in` query on `_id` (up to 500 keys, all in the first reply; at most 4 such
//! reads of a kind in flight, an unread count's read being two queries: summaries and counters).
//! There is no timer: a lone read is sent at once, as before. A caller's wait, queueing included,
//! is bounded by twice the operation timeout (then
//! [`StoreError::Unavailable`](labchat_core::StoreError)); a failed query fails each of its callers
//! with the same kind, while a document that cannot be read (a summary, a cursor's message) fails
//! only the reads of its own key. A request read this way is decided exactly as a lone one
//! (`requests.rs`); a cursor of another room is not found, as before.

mod batch;
mod catch_up;
mod claim;
mod cursors;
mod documents;
mod edits;
mod errors;
mod gather;
mod inbox;
mod latest;
mod migrate;
mod requests;
mod sequence;
mod settings;
mod store;
mod summary;
mod summary_writes;
mod tally;

pub use settings::MongoSettings;
pub use store::{MESSAGES_COLLECTION, MongoStore, RECEIPTS_COLLECTION};
pub use summary::{ROOMS_COLLECTION, SEEN_COLLECTION};
