//! The PUBLISH side: a task with its own multiplexed connection that sends the node's envelopes
//! in the order they were handed over, batched into pipelines, through the [`Outbox`]. Redis
//! being down never makes a publish fail or wait: an envelope that could not be published waits
//! in the outbox (bounded) and is published again, in order, as soon as a connection is back;
//! one dropped past a bound has its room resynced. The connection is checked with a PING after
//! a second without traffic, so a connection the server closed is replaced before the next
//! publish needs it. Every payload is sealed with the backplane secret (`auth`), if there is one,
//! as it is published.

use std::time::Duration;

use labchat_domain::RequestId;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::auth::Keys;
use crate::inbox;
use crate::metrics_names::{OUTBOX_BYTES, OUTBOX_DROPPED, OUTBOX_ENTRIES, PUBLISH_ERRORS, REPUBLISHED};
use crate::outbox::{Dropped, Entry, Keep, Outbox, OutboxBounds};
use crate::resync::{self, Ask};
use crate::topology::{Conn, Connector, is_shard_channel};

/// The first wait before connecting again after a failure; doubled up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_millis(50);
/// The longest wait between two connection attempts while envelopes wait.
const RETRY_MAX: Duration = Duration::from_secs(1);
/// After this long without traffic the connection is checked with a PING.
const KEEPALIVE: Duration = Duration::from_secs(1);
/// The most envelopes sent in one pipeline.
const BATCH: usize = 256;

/// One envelope to publish.
#[derive(Debug)]
pub(crate) struct Outgoing {
    /// The channel.
    pub(crate) channel: String,
    /// The encoded envelope.
    pub(crate) payload: Vec<u8>,
    /// The room it concerns, if any.
    pub(crate) room: Option<RequestId>,
    /// What happens to it when it cannot be published at once.
    pub(crate) keep: Keep,
}

/// What the broadcaster tells the publisher besides envelopes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Command {
    /// A node's subscriber (this node's or another's) was away this long: publish again what
    /// was published meanwhile.
    Replay(Duration),
    /// This node's subscriber lost Redis: the publisher's connection is likely gone too.
    LinkDown,
}

/// Counts and logs envelopes that could not be published at all.
pub(crate) fn dropped(node: &str, count: usize, error: &str) {
    metrics::counter!(PUBLISH_ERRORS, "node" => node.to_owned()).increment(count as u64);
    tracing::warn!(node, error = %error, envelopes = count, "an envelope could not be published; other nodes will fill from the store");
}

/// Logs failures once when they start, and once when publishing works again.
struct Failures<'a> {
    node: &'a str,
    failing: bool,
}

impl Failures<'_> {
    fn failed(&mut self, count: usize, error: &str) {
        metrics::counter!(PUBLISH_ERRORS, "node" => self.node.to_owned()).increment(count as u64);
        if self.failing {
            tracing::debug!(node = self.node, error = %error, envelopes = count, "publishing to redis failed");
        } else {
            self.failing = true;
            tracing::warn!(node = self.node, error = %error, envelopes = count, "publishing to redis failed; the envelopes wait in the outbox");
        }
    }

    fn succeeded(&mut self) {
        if self.failing {
            self.failing = false;
            tracing::info!(node = self.node, "publishing to redis again");
        }
    }
}

/// The publisher's inputs.
pub(crate) struct Inputs {
    pub(crate) rx: mpsc::Receiver<Outgoing>,
    pub(crate) commands: mpsc::Receiver<Command>,
    pub(crate) stop: watch::Receiver<bool>,
}

/// The publisher's state while it runs.
struct Publisher<'a> {
    node: &'a str,
    connector: Connector,
    op_timeout: Duration,
    /// Seals every payload as it is published (so a replay is sealed with the current secret).
    keys: Keys,
    conn: Option<Conn>,
    outbox: Outbox,
    /// While envelopes wait: when to try again, and the next back-off.
    retry_at: Option<Instant>,
    backoff: Duration,
    last_traffic: Instant,
    failures: Failures<'a>,
}

/// Runs until `stop` turns true or every sender is gone.
pub(crate) async fn run(
    node: String,
    connector: Connector,
    mut inputs: Inputs,
    op_timeout: Duration,
    bounds: OutboxBounds,
    keys: Keys,
) {
    let mut p = Publisher {
        node: &node,
        connector,
        op_timeout,
        keys,
        conn: None,
        outbox: Outbox::new(bounds),
        retry_at: None,
        backoff: RETRY_MIN,
        last_traffic: Instant::now(),
        failures: Failures { node: &node, failing: false },
    };
    loop {
        let wake =
            if p.outbox.has_work() { p.retry_at.unwrap_or_else(Instant::now) } else { p.last_traffic + KEEPALIVE };
        tokio::select! {
            o = inputs.rx.recv() => match o {
                Some(o) => p.push(o),
                None => break,
            },
            c = inputs.commands.recv() => match c {
                Some(Command::Replay(window)) => {
                    let n = p.outbox.replay(window + op_timeout + Duration::from_millis(500), std::time::Instant::now());
                    if n > 0 {
                        metrics::counter!(REPUBLISHED, "node" => node.clone()).increment(n as u64);
                        tracing::debug!(node = %node, envelopes = n, "a subscriber was away; publishing again what it may have missed");
                    }
                }
                Some(Command::LinkDown) => p.conn = None,
                None => break,
            },
            _ = tokio::time::sleep_until(wake) => {
                if !p.outbox.has_work() {
                    p.keepalive().await;
                }
            }
            _ = inputs.stop.changed() => break,
        }
        while let Ok(o) = inputs.rx.try_recv() {
            p.push(o);
        }
        if p.outbox.has_work() && p.retry_at.is_none_or(|t| Instant::now() >= t) {
            p.flush().await;
        }
        p.gauges();
    }
}

impl Publisher<'_> {
    fn push(&mut self, o: Outgoing) {
        let entry =
            Entry { channel: o.channel, payload: o.payload, room: o.room, keep: o.keep, at: std::time::Instant::now() };
        let dropped = self.outbox.push(entry, std::time::Instant::now());
        self.count_dropped(&dropped);
    }

    fn count_dropped(&self, dropped: &[Dropped]) {
        for why in dropped {
            metrics::counter!(OUTBOX_DROPPED, "node" => self.node.to_owned(), "bound" => why.as_str()).increment(1);
        }
        if !dropped.is_empty() {
            tracing::warn!(
                node = self.node,
                envelopes = dropped.len(),
                "outbox bound reached: envelopes dropped, their rooms will be resynced"
            );
        }
    }

    fn gauges(&self) {
        let (entries, bytes) = self.outbox.pending();
        metrics::gauge!(OUTBOX_ENTRIES, "node" => self.node.to_owned()).set(entries as f64);
        metrics::gauge!(OUTBOX_BYTES, "node" => self.node.to_owned()).set(bytes as f64);
    }

    /// A connection, made if there is none; `None` (and the next try scheduled) on failure.
    async fn connection(&mut self) -> Option<Conn> {
        if let Some(c) = &self.conn {
            return Some(c.clone());
        }
        let error = match tokio::time::timeout(self.op_timeout, self.connector.connect()).await {
            Ok(Ok(c)) => {
                self.conn = Some(c.clone());
                return Some(c);
            }
            Ok(Err(e)) => format!("connect: {e}"),
            Err(_) => format!("connect: no answer within {:?}", self.op_timeout),
        };
        let (waiting, _) = self.outbox.pending();
        self.failures.failed(waiting, &error);
        self.retry_later();
        None
    }

    fn retry_later(&mut self) {
        self.retry_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(RETRY_MAX);
    }

    /// Checks an idle connection (or makes one), so that the next publish finds one that works.
    async fn keepalive(&mut self) {
        self.last_traffic = Instant::now();
        let Some(mut c) = self.connection().await else { return };
        let ping = tokio::time::timeout(self.op_timeout, redis::cmd("PING").query_async::<()>(&mut c)).await;
        if !matches!(ping, Ok(Ok(()))) {
            tracing::debug!(node = self.node, "the publisher's redis connection failed its keep-alive; reconnecting");
            self.conn = None;
            self.retry_at = None;
        }
    }

    /// Publishes what waits, in order, then the resync notice; stops at the first failure.
    async fn flush(&mut self) {
        let now = std::time::Instant::now();
        let dropped = self.outbox.enforce(now);
        self.count_dropped(&dropped);
        while self.outbox.has_work() {
            let Some(mut c) = self.connection().await else { return };
            let mut batch = self.outbox.take(BATCH);
            let resync = if batch.is_empty() { Some(self.outbox.take_resync()) } else { None };
            if let Some((all, rooms)) = &resync {
                batch = self.resync_notices(*all, rooms);
            }
            self.last_traffic = Instant::now();
            let error = match tokio::time::timeout(self.op_timeout, self.send_batch(&mut c, &batch)).await {
                Ok(Ok(())) => {
                    self.failures.succeeded();
                    self.retry_at = None;
                    self.backoff = RETRY_MIN;
                    // Resync notices too are kept for a replay: a node away when one was
                    // published must still hear it once it is back.
                    self.outbox.published(batch, std::time::Instant::now());
                    continue;
                }
                Ok(Err(e)) => format!("publish: {e}"),
                Err(_) => format!("publish: no answer within {:?}", self.op_timeout),
            };
            self.conn = None;
            self.failures.failed(batch.len(), &error);
            match resync {
                Some((all, rooms)) => self.outbox.resync_failed(all, rooms),
                None => {
                    let lost = self.outbox.failed(batch);
                    self.count_dropped(&vec![Dropped::Ephemeral; lost]);
                }
            }
            // The first failure on a connection that had worked is retried at once, on a new
            // one (the server closed the old one); a second failure waits.
            if self.retry_at.is_some() {
                self.retry_later();
            } else {
                self.retry_at = Some(Instant::now());
            }
            return;
        }
    }

    /// Publishes a batch: one pipeline on one server; on a cluster one pipeline per channel (a
    /// channel is one slot), in order within each channel, the channels at once. Room channels
    /// of a cluster are sharded (`SPUBLISH`).
    async fn send_batch(&self, c: &mut Conn, batch: &[Entry]) -> redis::RedisResult<()> {
        let command = |channel: &str| if is_shard_channel(channel) { "SPUBLISH" } else { "PUBLISH" };
        if !c.is_cluster() {
            let mut pipe = redis::pipe();
            for e in batch {
                pipe.cmd(command(&e.channel)).arg(&e.channel).arg(&*self.keys.seal(&e.payload)).ignore();
            }
            return pipe.query_async::<()>(c).await;
        }
        let mut pipes: Vec<(&str, redis::Pipeline)> = Vec::new();
        for e in batch {
            let at = match pipes.iter().position(|(channel, _)| *channel == e.channel) {
                Some(at) => at,
                None => {
                    pipes.push((&e.channel, redis::pipe()));
                    pipes.len() - 1
                }
            };
            pipes[at].1.cmd(command(&e.channel)).arg(&e.channel).arg(&*self.keys.seal(&e.payload)).ignore();
        }
        let sends = pipes.iter().map(|(_, pipe)| {
            let mut c = c.clone();
            async move { pipe.query_async::<()>(&mut c).await }
        });
        futures_util::future::join_all(sends).await.into_iter().collect()
    }

    fn resync_notices(&self, all: bool, rooms: &[RequestId]) -> Vec<Entry> {
        let asks = if all {
            vec![Ask::All]
        } else {
            rooms.chunks(resync::ROOMS_PER_NOTICE).map(|c| Ask::Rooms(c.to_vec())).collect()
        };
        asks.iter()
            .filter_map(|ask| match resync::encode(self.node, ask) {
                Ok(payload) => Some(Entry {
                    channel: inbox::CHANNEL.to_owned(),
                    payload,
                    room: None,
                    // A notice naming rooms is replayed to a node that was away when it was
                    // published. One for every room is not: a replay that needs it makes a new
                    // one (`Outbox::replay`), so replaying old ones would only multiply fills.
                    keep: if matches!(ask, Ask::All) { Keep::UntilSent } else { Keep::Always },
                    at: std::time::Instant::now(),
                }),
                Err(e) => {
                    dropped(self.node, 1, &e.to_string());
                    None
                }
            })
            .collect()
    }
}
