//! Each room's order, with MongoDB as the sequencer.
//!
//! A message is inserted with the next seq this node believes free in its room, and the unique
//! index [`SEQ_INDEX`] on `{requestId: 1, seq: 1}` decides: if another node (or an earlier,
//! timed-out attempt) took that seq, the insert fails with a duplicate key on that index. The seq
//! it tried is then known to be stored, so the node tries the one after it, without reading
//! anything: when two nodes post into one room, the other node is usually only a message or two
//! ahead. After [`READ_AFTER`] such conflicts in one room within one call, the node reloads the
//! room's highest seq with one indexed query instead; after [`MAX_CONFLICTS`] in one room, the
//! room's messages of the call fail with [`StoreError::Unavailable`]. The last seq known stored
//! is cached per room, so the usual insert costs no extra round trip. A seq heard from another
//! node (`ChatStore::seq_seen`) is only a hint: past the cached seq it makes the next insert read
//! the room's highest seq, so a forged hint can never make a node skip seqs.
//!
//! Several messages go in one *ordered* `insert_many`: the server stores them one after the
//! other and stops at the first failure, so what is stored is always a prefix of what was sent,
//! and no seq is ever skipped, even when the call times out midway. After a failure the rest are
//! given fresh seqs and sent again. A seq exists only once its message is stored.

use std::collections::HashMap;
use std::hash::{BuildHasher, DefaultHasher, Hash, Hasher, RandomState};
use std::sync::{Arc, Mutex as SyncMutex, MutexGuard};
use std::time::Duration;

use labchat_core::StoreError;
use labchat_domain::Seq;
use mongodb::Collection;
use mongodb::bson::doc;
use mongodb::error::{Error, ErrorKind, IndexedWriteError};
use tokio::sync::Mutex;

use crate::documents::{MessageDoc, SeqOnly, parse_seq, stored_seq};
use crate::errors::{DUPLICATE_KEY, bad_data, bounded, store_error, within, write_error};

/// The name of the unique index on `{requestId: 1, seq: 1}`.
pub(crate) const SEQ_INDEX: &str = "requestId_1_seq_1";

/// How many seqs one call may lose to other nodes in one room before its messages of that room
/// fail as unavailable.
pub(crate) const MAX_CONFLICTS: u32 = 64;

/// After this many seqs lost in one room within one call, the room's highest seq is read from
/// the store rather than guessed as the next one.
pub(crate) const READ_AFTER: u32 = 3;

/// Counter: seqs a node tried and found taken (by another node, or an earlier attempt).
pub(crate) const SEQ_CONFLICTS: &str = "labchat_store_seq_conflicts_total";

/// Stripes of the per-room lock that keeps one node's single inserts into a room one at a time.
const STRIPES: usize = 64;

const CONTEXT: &str = "insert a message";

/// What happened to one message.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// It was stored with this seq.
    Inserted(Seq),
    /// A unique index other than the seq's refused it: its id or idempotency key is taken.
    DuplicateKey,
    /// It was not stored, or whether it was is unknown.
    Failed(StoreError),
}

/// Assigns seqs and stores messages (see the module docs). Shared by every insert of one store.
#[derive(Debug)]
pub(crate) struct Sequencer {
    messages: Collection<MessageDoc>,
    op_timeout: Duration,
    /// The highest seq known to be stored, per room (hex id). Never above the truth.
    known: SyncMutex<HashMap<String, i64>>,
    rooms: Box<[Arc<Mutex<()>>]>,
}

/// How an ordered `insert_many` of `sent` documents ended.
#[derive(Debug)]
pub(crate) struct Ordered {
    /// The first `stored` documents were stored.
    pub(crate) stored: usize,
    /// Why the rest were not, if they were not.
    pub(crate) stop: Option<Stop>,
}

/// Why an ordered insert stopped.
#[derive(Debug)]
pub(crate) enum Stop {
    /// Document `stored` was refused; the ones after it were not tried.
    Refused(IndexedWriteError),
    /// What was stored of the documents from `stored` on is unknown (a network failure, a
    /// timeout, a write concern failure).
    Unknown(StoreError),
}

/// Reads the result of an ordered `insert_many` of `sent` documents.
pub(crate) fn ordered_result(sent: usize, result: Result<(), Error>) -> Ordered {
    let e = match result {
        Ok(()) => return Ordered { stored: sent, stop: None },
        Err(e) => e,
    };
    if let ErrorKind::InsertMany(m) = e.kind.as_ref() {
        let first = m.write_errors.iter().flatten().min_by_key(|w| w.index);
        if let (None, Some(w)) = (&m.write_concern_error, first) {
            return Ordered { stored: w.index.min(sent), stop: Some(Stop::Refused(w.clone())) };
        }
        if m.write_concern_error.is_some() {
            // Stored, maybe, but not as durably as asked: their callers get `Unavailable`
            // (retryable, as for a single insert), and a retry with the same client message id
            // finds them.
            return Ordered { stored: 0, stop: Some(Stop::Unknown(StoreError::unavailable(CONTEXT, e))) };
        }
    }
    Ordered { stored: 0, stop: Some(Stop::Unknown(store_error(CONTEXT, e))) }
}

/// The name of the unique index a duplicate-key message names, when it names one: MongoDB says
/// `... index: <name> dup key: ...`; some compatible servers say `... index '<name>'`.
pub(crate) fn index_named(errmsg: &str) -> Option<&str> {
    if let Some((_, rest)) = errmsg.split_once("index: ") {
        return rest.split_whitespace().next();
    }
    let (_, rest) = errmsg.split_once("index '")?;
    rest.split_once('\'').map(|(name, _)| name)
}

/// Whether an index name is the seq index ([`SEQ_INDEX`], or a compatible server's own name for
/// an index on `requestId` and `seq`).
fn is_seq_index(name: &str) -> bool {
    name == SEQ_INDEX || name.ends_with("_requestId_seq")
}

/// Which unique index refused a document.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Conflict {
    /// The seq was taken: retry with a fresh one.
    Seq,
    /// The id or the idempotency key was taken.
    Key,
}

impl Sequencer {
    /// A sequencer storing into `messages`, each call bounded by `op_timeout`.
    pub(crate) fn new(messages: Collection<MessageDoc>, op_timeout: Duration) -> Self {
        Self {
            messages,
            op_timeout,
            known: SyncMutex::new(HashMap::new()),
            rooms: (0..STRIPES).map(|_| Arc::new(Mutex::new(()))).collect(),
        }
    }

    fn cache(&self) -> MutexGuard<'_, HashMap<String, i64>> {
        // Every update is a single insert or removal, so a poisoned map is still consistent.
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The room's highest stored seq (0 for none), with one indexed query.
    pub(crate) async fn highest(&self, room: &str) -> Result<i64, StoreError> {
        let context = "read the highest seq of a room";
        let filter = doc! {"requestId": room, "seq": {"$exists": true}};
        let top = bounded(self.op_timeout, context, async {
            self.messages
                .clone_with_type::<SeqOnly>()
                .find_one(filter)
                .sort(doc! {"seq": -1})
                .projection(doc! {"seq": 1, "_id": 0})
                .await
        })
        .await?;
        match top {
            None => Ok(0),
            Some(d) => parse_seq(d.seq).map(stored_seq).map_err(|e| bad_data(context, e)),
        }
    }

    /// Stores one message, one at a time per room on this node; see [`Self::store`].
    pub(crate) async fn store_one(&self, doc: MessageDoc) -> Outcome {
        let mut h = DefaultHasher::new();
        doc.request_id.hash(&mut h);
        let stripe = usize::try_from(h.finish() % STRIPES as u64).unwrap_or(0);
        let limit = self.op_timeout;
        let stored = tokio::time::timeout(limit, async {
            let _room = self.rooms[stripe].lock().await;
            let mut docs = [doc];
            self.store(&mut docs, &|_| false).await.pop()
        })
        .await;
        match stored {
            Ok(Some(outcome)) => outcome,
            Ok(None) => Outcome::Failed(StoreError::internal(CONTEXT, "no outcome for the message")),
            Err(_) => Outcome::Failed(StoreError::unavailable(CONTEXT, crate::errors::TimedOut(limit))),
        }
    }

    /// Stores `docs` in their order, each as the next message of its room (setting its `seq`),
    /// and returns what happened to each. Documents for which `gone` says their caller left are
    /// not sent again after a failure.
    pub(crate) async fn store(&self, docs: &mut [MessageDoc], gone: &(dyn Fn(usize) -> bool + Sync)) -> Vec<Outcome> {
        let mut out: Vec<Option<Outcome>> = docs.iter().map(|_| None).collect();
        let mut pending: Vec<usize> = (0..docs.len()).collect();
        // Seqs lost to other nodes in this call, per room. Every round stores a document,
        // settles one, or counts a lost seq in a room, and a room that lost MAX_CONFLICTS leaves:
        // the loop ends.
        let mut conflicts: HashMap<String, u32> = HashMap::new();
        loop {
            pending.retain(|&i| !gone(i));
            let (exhausted, rest): (Vec<usize>, Vec<usize>) = pending
                .into_iter()
                .partition(|&i| conflicts.get(&docs[i].request_id).is_some_and(|&n| n >= MAX_CONFLICTS));
            pending = rest;
            for i in exhausted {
                tracing::warn!(request_id = %docs[i].request_id, conflicts = MAX_CONFLICTS, "gave up on a message's seq");
                out[i] = Some(Outcome::Failed(StoreError::unavailable(
                    CONTEXT,
                    format!("other nodes took the room's next seq {MAX_CONFLICTS} times"),
                )));
            }
            if pending.is_empty() {
                break;
            }
            self.assign(docs, &mut pending, &mut out).await;
            if pending.is_empty() {
                break;
            }
            let sent = pending.len();
            let insert = self.messages.insert_many(pending.iter().map(|&i| &docs[i])).ordered(true);
            let result = match within(self.op_timeout, CONTEXT, insert).await {
                Ok(driver) => ordered_result(sent, driver.map(drop)),
                Err(timeout) => Ordered { stored: 0, stop: Some(Stop::Unknown(timeout)) },
            };
            for &i in &pending[..result.stored] {
                out[i] = Some(match parse_seq(docs[i].seq) {
                    Ok(seq) => {
                        self.stored(&docs[i].request_id, stored_seq(seq));
                        Outcome::Inserted(seq)
                    }
                    Err(e) => Outcome::Failed(bad_data(CONTEXT, e)),
                });
            }
            let rest = pending.split_off(result.stored);
            let Some(stop) = result.stop else { return finish(out) };
            match stop {
                Stop::Unknown(e) => {
                    for &i in &rest {
                        self.forget(&docs[i].request_id);
                        out[i] = Some(Outcome::Failed(copy(&e)));
                    }
                    return finish(out);
                }
                Stop::Refused(w) => {
                    let Some((&k, after)) = rest.split_first() else { return finish(out) };
                    let retry = if w.code == DUPLICATE_KEY {
                        match self.conflict(&docs[k], &w.message).await {
                            Ok(Conflict::Seq) => {
                                let room = &docs[k].request_id;
                                let lost = conflicts.entry(room.clone()).or_insert(0);
                                *lost += 1;
                                metrics::counter!(SEQ_CONFLICTS).increment(1);
                                match docs[k].seq {
                                    // Taken, so stored: the next one is the likeliest free.
                                    Some(taken) if *lost < READ_AFTER => self.stored(room, taken),
                                    _ => self.forget(room),
                                }
                                if *lost > 1 {
                                    backoff(*lost).await;
                                }
                                true
                            }
                            Ok(Conflict::Key) => {
                                out[k] = Some(Outcome::DuplicateKey);
                                false
                            }
                            Err(e) => {
                                out[k] = Some(Outcome::Failed(e));
                                false
                            }
                        }
                    } else {
                        out[k] = Some(Outcome::Failed(write_error(CONTEXT, &w)));
                        false
                    };
                    pending = retry.then_some(k).into_iter().chain(after.iter().copied()).collect();
                }
            }
        }
        finish(out)
    }

    /// Gives every pending document its room's next seq, in order. Documents of a room whose
    /// highest seq cannot be read fail and leave `pending`.
    async fn assign(&self, docs: &mut [MessageDoc], pending: &mut Vec<usize>, out: &mut [Option<Outcome>]) {
        let mut next: HashMap<String, i64> = HashMap::new();
        let mut failed: HashMap<String, StoreError> = HashMap::new();
        for &i in pending.iter() {
            let room = &docs[i].request_id;
            if next.contains_key(room) || failed.contains_key(room) {
                continue;
            }
            let known = self.cache().get(room).copied();
            match known {
                Some(s) => {
                    next.insert(room.clone(), s + 1);
                }
                None => match self.highest(room).await {
                    Ok(s) => {
                        next.insert(room.clone(), s + 1);
                    }
                    Err(e) => {
                        failed.insert(room.clone(), e);
                    }
                },
            }
        }
        pending.retain(|&i| match failed.get(&docs[i].request_id) {
            Some(e) => {
                out[i] = Some(Outcome::Failed(copy(e)));
                false
            }
            None => true,
        });
        for &i in pending.iter() {
            if let Some(n) = next.get_mut(&docs[i].request_id) {
                docs[i].seq = Some(*n);
                *n += 1;
            }
        }
    }

    /// Which unique index refused `doc`: named in the message, else found by looking for a
    /// document holding its id or idempotency key.
    async fn conflict(&self, doc: &MessageDoc, errmsg: &str) -> Result<Conflict, StoreError> {
        if let Some(name) = index_named(errmsg) {
            return Ok(if is_seq_index(name) { Conflict::Seq } else { Conflict::Key });
        }
        let filter = doc! {"$or": [{"_id": doc.id}, {"idem": &doc.idem}]};
        let found = bounded(self.op_timeout, "find which unique key a message hit", async {
            self.messages.clone_with_type::<SeqOnly>().find_one(filter).projection(doc! {"seq": 1}).await
        })
        .await?;
        Ok(if found.is_some() { Conflict::Key } else { Conflict::Seq })
    }

    /// The room's message `seq` is stored (by this node, or another one that said so): the next
    /// insert into the room tries a seq after it. Only ever raises what is known.
    pub(crate) fn stored(&self, room: &str, seq: i64) {
        let mut cache = self.cache();
        let known = cache.entry(room.to_owned()).or_insert(seq);
        *known = (*known).max(seq);
    }

    /// Another node says the room's message `seq` is stored: a hint, not proof (it came through
    /// Redis, where a forger may have written it). Past what this node knows stored, it drops the
    /// room's cached seq, so that the next insert reads the room's highest seq from the store (one
    /// indexed query) rather than trying a seq the hint says is taken: the hint spares the failed
    /// insert but never moves the room's sequence past what the store confirms. A hint at or below
    /// what is known, or for a room not cached, changes nothing.
    pub(crate) fn hinted(&self, room: &str, seq: i64) {
        let mut cache = self.cache();
        if cache.get(room).is_some_and(|&known| seq > known) {
            cache.remove(room);
        }
    }

    fn forget(&self, room: &str) {
        self.cache().remove(room);
    }
}

fn finish(out: Vec<Option<Outcome>>) -> Vec<Outcome> {
    out.into_iter()
        .map(|o| o.unwrap_or_else(|| Outcome::Failed(StoreError::unavailable(CONTEXT, "the caller gave up"))))
        .collect()
}

/// The same failure again, for another message of the same call.
fn copy(e: &StoreError) -> StoreError {
    let mut cause = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if !cause.is_empty() {
            cause.push_str(": ");
        }
        cause.push_str(&s.to_string());
        source = s.source();
    }
    let cause = if cause.is_empty() { e.to_string() } else { cause };
    if e.is_retryable() { StoreError::unavailable(CONTEXT, cause) } else { StoreError::internal(CONTEXT, cause) }
}

/// A short random pause after losing a room's seq to another node more than once in a call, so
/// two nodes racing for one room do not collide in lockstep.
async fn backoff(attempt: u32) {
    let jitter = RandomState::new().hash_one(attempt) % (u64::from(attempt.min(10)) * 500 + 200);
    tokio::time::sleep(Duration::from_micros(jitter)).await;
}
