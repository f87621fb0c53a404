//! One member of the scale workload: a connection that joins its room, records every message's
//! `seq`, and, when its node goes away, reconnects to another node with full-jitter backoff (the
//! rule of clients/js's `backoff.ts`) and catches up with `joinRoom {after}` and `history {after}`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::Run;
use crate::client::Ws;

mod dial;
mod frames;
mod outcome;

use dial::open;
pub(crate) use dial::{MAX_DELAY, backoff};
#[cfg(test)]
pub(crate) use outcome::Event;
pub(crate) use outcome::Outcome;
use outcome::contiguous_id;

/// Correlation ids: the join, a catch-up page, and the final read of the store's last `seq`.
const JOIN_ID: u64 = 1;
const PAGE_ID: u64 = 2;
const CHECK_ID: u64 = 3;
/// A post queued longer than this is dropped (counted as unsent).
const STALE: Duration = Duration::from_millis(200);
/// The pause before asking again for a page or a check that failed without a `retryAfterMs`
/// (the upper end of clients/js's retry delay).
const RETRY: Duration = Duration::from_secs(1);

/// The pause before a join refused, retryable, without a `retryAfterMs` is sent again: 0.5 to
/// 1 s (clients/js's `retryDelay`).
fn retry_pause() -> Duration {
    RETRY / 2 + backoff(1) / 2
}

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

fn frame(event: &str, data: &Value, id: u64) -> Message {
    Message::text(json!({"event": event, "data": data, "id": id}).to_string())
}

/// The join of `room`, catching up after the message `after` when given.
fn join(room: &str, after: Option<String>) -> Message {
    frame("joinRoom", &json!({"requestId": room, "after": after}), JOIN_ID)
}

/// A member's task: runs until its command channel closes, then returns what it saw.
pub(crate) async fn run(me: Identity, run: Arc<Run>, mut commands: mpsc::UnboundedReceiver<Command>) -> Outcome {
    let mut out = Outcome::default();
    let mut node = me.node;
    let mut first = true;
    let mut attempt = 0u32;
    // When it first lost its connection (the start of its trail).
    let mut away_since = None;
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
        let mut ws = match ws {
            Ok(ws) => ws,
            Err(e) => {
                let text = e.to_string();
                let why = text.split_once(&format!("connection {}: ", me.index)).map_or(text.as_str(), |(_, w)| w);
                out.note(away_since, format!("node {node}: {why}"));
                drop(permit);
                if first {
                    run.failed_open();
                }
                first = false;
                continue;
            }
        };
        let after = contiguous_id(&out).or_else(|| out.base_id.as_deref().map(str::to_owned));
        let forward = after.is_some();
        if ws.send(join(&me.room_id, after)).await.is_err() {
            out.note(away_since, format!("node {node}: the join could not be sent"));
            first = false;
            continue;
        }
        let mut session = Session {
            me: &me,
            run: &run,
            out: &mut out,
            forward,
            caught_up: false,
            filling: false,
            later: None,
            asked: Some((Ask::Join, Instant::now())),
            away_since,
        };
        let ended = session.serve(&mut ws, &mut commands, started, lost_at, permit, first).await;
        let caught_up = session.caught_up;
        first = false;
        match ended {
            Ended::Stop(standing) => {
                out.note(away_since, format!("stopped on node {node}: {standing}"));
                out.caught_up_at_end = caught_up;
                return out;
            }
            Ended::Lost(why) => {
                if caught_up {
                    attempt = 0;
                }
                if !out.lost {
                    out.lost = true;
                    run.lost();
                    away_since = Some(Instant::now());
                }
                out.note(away_since, format!("node {node}: {why}"));
            }
        }
    }
}

/// How a session ended, and why (for the member's trail).
enum Ended {
    /// The run stopped; where the member stood then.
    Stop(String),
    /// The connection was lost or given up.
    Lost(String),
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
    /// The join or page sent and not answered yet, and when.
    asked: Option<(Ask, Instant)>,
    /// When the member first lost its connection (its trail is kept from then).
    away_since: Option<Instant>,
}

/// A request asked again after a failure.
#[derive(Clone, Copy)]
enum Ask {
    /// The join, refused for now.
    Join,
    /// The next page after the newest message held without a hole.
    Page,
    /// The store's last `seq` of the room.
    Check,
}

impl Ask {
    const fn name(self) -> &'static str {
        match self {
            Self::Join => "the join",
            Self::Page => "a catch-up page",
            Self::Check => "the store check",
        }
    }
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
                        Ask::Join => {
                            self.asked = Some((Ask::Join, Instant::now()));
                            ws.send(join(&self.me.room_id, self.after())).await
                        }
                        Ask::Page => match self.after() {
                            Some(after) => {
                                let data = json!({"requestId": &*self.me.room_id, "after": after});
                                self.asked = Some((Ask::Page, Instant::now()));
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
                        return Ended::Lost("a retried request could not be sent".into());
                    }
                }
                msg = ws.next() => {
                    let text = match msg {
                        Some(Ok(Message::Text(t))) => t,
                        Some(Ok(Message::Close(close))) => {
                            let why = close.map_or_else(|| "no code".into(), |c| format!("{} {}", c.code, c.reason));
                            return Ended::Lost(format!("closed by the server ({why}), {}", self.standing()));
                        }
                        Some(Err(e)) => return Ended::Lost(format!("connection failed ({e}), {}", self.standing())),
                        None => return Ended::Lost(format!("connection ended, {}", self.standing())),
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
                                return Ended::Lost("a page could not be asked for".into());
                            }
                            self.asked = Some((Ask::Page, Instant::now()));
                        }
                        Some(Step::Retry(code)) => return Ended::Lost(format!("refused ({code}), not retryable")),
                        Some(Step::AskAgain(code, wait, ask)) => {
                            // A join or catch-up page refused for now (a node busy with other
                            // joins, or a store that timed out): the same again on the same
                            // connection, after its retryAfterMs or a pause (the library's
                            // rule); meanwhile the connection is served (pings answered).
                            let (ms, what) = (wait.as_millis(), ask.name());
                            self.out.note(self.away_since, format!("{what} refused ({code}), asked again in {ms} ms"));
                            self.later = Some((Instant::now() + wait, ask));
                        }
                        None => {}
                    }
                }
                cmd = commands.recv() => match cmd {
                    None => return Ended::Stop(self.standing()),
                    Some(Command::Post(text, at)) if self.caught_up && at.elapsed() < STALE => {
                        let data = json!({"requestId": &*self.me.room_id, "message": text});
                        let frame = json!({"event": "message", "data": data}).to_string();
                        if ws.send(Message::text(frame)).await.is_err() {
                            return Ended::Lost("a post could not be sent".into());
                        }
                        self.run.posted();
                    }
                    Some(Command::Post(..)) => self.run.unsent(),
                    Some(Command::Check) => {
                        if ws.send(self.check()).await.is_err() {
                            return Ended::Lost("the store check could not be sent".into());
                        }
                    }
                },
            }
        }
    }
}

/// What a frame asks the session to do next.
enum Step {
    CaughtUp,
    Page(String),
    /// The join or a catch-up page was refused with this code, not retryable: reconnect.
    Retry(String),
    /// The join or its catch-up page was refused for now, with this code: ask the same again
    /// after this long.
    AskAgain(String, Duration, Ask),
}
