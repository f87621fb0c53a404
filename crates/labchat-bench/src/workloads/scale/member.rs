//! One member of the scale workload: a connection that joins its room, records every message's
//! `seq`, and, when its node goes away, reconnects to another node with full-jitter backoff (the
//! rule of clients/js's `backoff.ts`) and catches up with `joinRoom {after}` and `history {after}`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::Run;
use crate::client::Ws;
use crate::stats::{self, BenchText};

mod dial;

use dial::open;
pub(crate) use dial::{MAX_DELAY, backoff};

/// Correlation ids: the join, a catch-up page, and the final read of the store's last `seq`.
const JOIN_ID: u64 = 1;
const PAGE_ID: u64 = 2;
const CHECK_ID: u64 = 3;
/// A post queued longer than this is dropped (counted as unsent).
const STALE: Duration = Duration::from_millis(200);
/// The pause before asking again for a page or a check that failed without a `retryAfterMs`
/// (clients/js's retry delay).
const RETRY: Duration = Duration::from_secs(1);

/// What a member is told by the workload.
pub(crate) enum Command {
    /// Post this text, queued at that instant (dropped while disconnected, or when it waited
    /// longer than [`STALE`] for a reconnect: a client would not post a scheduled text late).
    Post(String, Instant),
    /// Read the store's last `seq` of the room (`history {limit: 1}`).
    Check,
}

/// Who a member is.
pub(crate) struct Identity {
    pub(crate) index: usize,
    pub(crate) room: usize,
    pub(crate) room_id: Arc<str>,
    pub(crate) node: usize,
    pub(crate) token: String,
    pub(crate) source: Option<IpAddr>,
}

/// What a member saw, handed back when the run stops.
#[derive(Default)]
pub(crate) struct Outcome {
    /// Highest `seq` in the room when it first joined (messages up to it predate the run).
    pub(crate) base: Option<u64>,
    /// The id of that message (`None` in an empty room).
    pub(crate) base_id: Option<Box<str>>,
    /// Every `seq` received (live or in a page), with its id.
    pub(crate) seqs: BTreeMap<u64, Box<str>>,
    pub(crate) duplicates: u64,
    /// Lost its connection at least once.
    pub(crate) lost: bool,
    /// Joined and caught up on a connection when the run stopped (a member still reconnecting
    /// then cannot hold what was posted while it was away).
    pub(crate) caught_up_at_end: bool,
}

fn frame(event: &str, data: &Value, id: u64) -> Message {
    Message::text(json!({"event": event, "data": data, "id": id}).to_string())
}

/// A member's task: runs until its command channel closes, then returns what it saw.
pub(crate) async fn run(me: Identity, run: Arc<Run>, mut commands: mpsc::UnboundedReceiver<Command>) -> Outcome {
    let mut out = Outcome::default();
    let mut node = me.node;
    let mut first = true;
    let mut attempt = 0u32;
    loop {
        let lost_at = if first { None } else { Some(Instant::now()) };
        if !first {
            attempt += 1;
            tokio::time::sleep(backoff(attempt)).await;
            node = run.other_node(node);
        }
        let started = Instant::now();
        let permit = if first { run.opening.acquire().await.ok() } else { None };
        let url = run.url(node);
        let ws = open(&url, &me.token, me.source, me.index).await;
        let Ok(mut ws) = ws else {
            drop(permit);
            if first {
                run.failed_open();
            }
            first = false;
            continue;
        };
        let after = contiguous_id(&out).or_else(|| out.base_id.as_deref().map(str::to_owned));
        let join = json!({"requestId": &*me.room_id, "after": after});
        if ws.send(frame("joinRoom", &join, JOIN_ID)).await.is_err() {
            first = false;
            continue;
        }
        let forward = after.is_some();
        let mut session =
            Session { me: &me, run: &run, out: &mut out, forward, caught_up: false, filling: false, later: None };
        let ended = session.serve(&mut ws, &mut commands, started, lost_at, permit, first).await;
        let caught_up = session.caught_up;
        first = false;
        match ended {
            Ended::Stop => {
                out.caught_up_at_end = caught_up;
                return out;
            }
            Ended::Lost => {
                if caught_up {
                    attempt = 0;
                }
                if !out.lost {
                    out.lost = true;
                    run.lost();
                }
            }
        }
    }
}

/// Whether a `seq` past the base is missing below the highest one received.
fn has_hole(out: &Outcome) -> bool {
    let from = out.base.unwrap_or(0) + 1;
    let held = out.seqs.range(from..);
    held.clone().next_back().is_some_and(|(last, _)| (last + 1).saturating_sub(from) > held.count() as u64)
}

/// The id of the highest `seq` received without a hole from the base.
fn contiguous_id(out: &Outcome) -> Option<String> {
    let from = out.base.unwrap_or(0) + 1;
    (from..)
        .zip(out.seqs.range(from..))
        .take_while(|(expect, (seq, _))| *expect == **seq)
        .last()
        .map(|(_, (_, id))| id.to_string())
}

enum Ended {
    Stop,
    Lost,
}

struct Session<'a> {
    me: &'a Identity,
    run: &'a Run,
    out: &'a mut Outcome,
    /// The join names `after`: `hasMore` is about newer messages.
    forward: bool,
    caught_up: bool,
    /// A page after a hole in the live messages was asked for and has not come back complete.
    filling: bool,
    /// A page or check that failed, to ask again at that instant (the library's rule: a
    /// retryable failure is asked again after its `retryAfterMs`, or a pause).
    later: Option<(Instant, Ask)>,
}

/// A request asked again after a failure.
#[derive(Clone, Copy)]
enum Ask {
    /// The next page after the newest message held without a hole.
    Page,
    /// The store's last `seq` of the room.
    Check,
}

impl Session<'_> {
    async fn serve(
        &mut self,
        ws: &mut Ws,
        commands: &mut mpsc::UnboundedReceiver<Command>,
        started: Instant,
        lost_at: Option<Instant>,
        mut permit: Option<tokio::sync::SemaphorePermit<'_>>,
        first: bool,
    ) -> Ended {
        loop {
            // A timer only while a retry waits: most members never have one, and this loop turns
            // once per frame.
            let retry_at = self.later.map(|(at, _)| tokio::time::Instant::from_std(at));
            let retry = async move {
                match retry_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = retry => {
                    let Some((_, ask)) = self.later.take() else { continue };
                    let sent = match ask {
                        Ask::Page => match self.after() {
                            Some(after) => {
                                let data = json!({"requestId": &*self.me.room_id, "after": after});
                                ws.send(frame("history", &data, PAGE_ID)).await
                            }
                            None => {
                                self.filling = false;
                                Ok(())
                            }
                        },
                        Ask::Check => ws.send(self.check()).await,
                    };
                    if sent.is_err() {
                        return Ended::Lost;
                    }
                }
                msg = ws.next() => {
                    let text = match msg {
                        Some(Ok(Message::Text(t))) => t,
                        Some(Ok(Message::Close(_)) | Err(_)) | None => return Ended::Lost,
                        Some(Ok(_)) => continue,
                    };
                    let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else { continue };
                    match self.on_frame(&v) {
                        Some(Step::CaughtUp) => {
                            drop(permit.take());
                            self.run.joined(started, lost_at, first);
                        }
                        Some(Step::Page(after)) => {
                            let data = json!({"requestId": &*self.me.room_id, "after": after});
                            if ws.send(frame("history", &data, PAGE_ID)).await.is_err() {
                                return Ended::Lost;
                            }
                        }
                        Some(Step::Retry) => return Ended::Lost,
                        Some(Step::Rejoin(wait)) => {
                            // A node refusing a join under load: the same join again, after
                            // its retryAfterMs, on the same connection (the library's rule).
                            tokio::time::sleep(wait).await;
                            let join = json!({"requestId": &*self.me.room_id, "after": self.after()});
                            if ws.send(frame("joinRoom", &join, JOIN_ID)).await.is_err() {
                                return Ended::Lost;
                            }
                        }
                        None => {}
                    }
                }
                cmd = commands.recv() => match cmd {
                    None => return Ended::Stop,
                    Some(Command::Post(text, at)) if self.caught_up && at.elapsed() < STALE => {
                        let data = json!({"requestId": &*self.me.room_id, "message": text});
                        let frame = json!({"event": "message", "data": data}).to_string();
                        if ws.send(Message::text(frame)).await.is_err() {
                            return Ended::Lost;
                        }
                        self.run.posted();
                    }
                    Some(Command::Post(..)) => self.run.unsent(),
                    Some(Command::Check) => {
                        if ws.send(self.check()).await.is_err() {
                            return Ended::Lost;
                        }
                    }
                },
            }
        }
    }

    fn on_frame(&mut self, v: &Value) -> Option<Step> {
        let data = &v["data"];
        match v["event"].as_str()? {
            "message" if data["requestId"] == *self.me.room_id => {
                self.record(data, true);
                // A live message past a missing seq: the missing one may have been stored after
                // its sender was told it failed, and nobody published it; the client's rule is a
                // history page after the newest message held without a hole.
                if !self.caught_up || self.filling || !has_hole(self.out) {
                    return None;
                }
                let after = self.after();
                self.filling = after.is_some();
                after.map(Step::Page)
            }
            "roomHistory" if data["requestId"] == *self.me.room_id => {
                let messages = data["messages"].as_array().map(Vec::as_slice).unwrap_or_default();
                if v["id"].as_u64() == Some(CHECK_ID) {
                    let last = messages.iter().filter_map(|m| m["seq"].as_u64()).max().unwrap_or(0);
                    self.run.store_last(self.me.room, last);
                    return None;
                }
                if self.out.base.is_none() {
                    let newest = messages.iter().max_by_key(|m| m["seq"].as_u64());
                    self.out.base = Some(newest.and_then(|m| m["seq"].as_u64()).unwrap_or(0));
                    self.out.base_id = newest.and_then(|m| m["id"].as_str()).map(Into::into);
                    self.caught_up = true;
                    return Some(Step::CaughtUp);
                }
                for m in messages {
                    self.record(m, false);
                }
                if (self.forward || self.filling)
                    && data["hasMore"].as_bool() == Some(true)
                    && let Some(after) = contiguous_id(self.out).filter(|_| !messages.is_empty())
                {
                    return Some(Step::Page(after));
                }
                self.filling = false;
                if self.caught_up {
                    None
                } else {
                    self.caught_up = true;
                    Some(Step::CaughtUp)
                }
            }
            "error" => {
                self.run.server_error(v);
                let retryable = data["retryable"] == true;
                if self.caught_up {
                    let wait = data["retryAfterMs"].as_u64().map_or(RETRY, Duration::from_millis);
                    let ask = match v["id"].as_u64() {
                        Some(PAGE_ID) if self.filling && retryable => Ask::Page,
                        Some(CHECK_ID) if retryable => Ask::Check,
                        Some(PAGE_ID) => {
                            self.filling = false;
                            return None;
                        }
                        _ => return None,
                    };
                    self.later = Some((Instant::now() + wait, ask));
                    return None;
                }
                if !matches!(v["id"].as_u64(), Some(JOIN_ID | PAGE_ID)) {
                    return None;
                }
                let wait = data["retryAfterMs"].as_u64().filter(|_| retryable);
                Some(wait.map_or(Step::Retry, |ms| Step::Rejoin(Duration::from_millis(ms))))
            }
            _ => None,
        }
    }

    /// The read of the store's last `seq` of the room (`history {limit: 1}`).
    fn check(&self) -> Message {
        frame("history", &json!({"requestId": &*self.me.room_id, "limit": 1}), CHECK_ID)
    }

    /// Where the next page starts: the newest message held without a hole, else the base.
    fn after(&self) -> Option<String> {
        contiguous_id(self.out).or_else(|| self.out.base_id.as_deref().map(str::to_owned))
    }

    fn record(&mut self, m: &Value, live: bool) {
        let (Some(seq), Some(id)) = (m["seq"].as_u64(), m["id"].as_str()) else { return };
        if self.out.base.is_some_and(|b| seq <= b) {
            return;
        }
        if self.out.seqs.insert(seq, id.into()).is_some() {
            self.out.duplicates += 1;
            return;
        }
        if live
            && let Some(t) = m["message"].as_str().and_then(BenchText::parse)
            && t.nonce == self.run.nonce
        {
            self.run.delivered(&t, stats::now_ns().saturating_sub(t.t_ns));
        }
    }
}

enum Step {
    CaughtUp,
    Page(String),
    Retry,
    /// The join was refused for now: send it again after this long.
    Rejoin(Duration),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(base: u64, seqs: &[u64]) -> Outcome {
        let seqs = seqs.iter().map(|s| (*s, Box::from(format!("m{s}").as_str()))).collect();
        Outcome { base: Some(base), seqs, ..Outcome::default() }
    }

    #[test]
    fn a_hole_is_a_seq_missing_below_the_highest_held_past_the_base() {
        assert!(!has_hole(&out(3, &[])));
        assert!(!has_hole(&out(3, &[4, 5, 6])));
        assert!(has_hole(&out(3, &[5])), "4 is missing");
        assert!(has_hole(&out(3, &[4, 6])), "5 is missing");
        assert!(!has_hole(&out(3, &[1, 2, 4])), "seqs up to the base predate the run");
        assert_eq!(contiguous_id(&out(3, &[4, 5, 7])).as_deref(), Some("m5"));
    }
}
