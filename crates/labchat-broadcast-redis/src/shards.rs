//! The node's sharded subscriptions on a Redis Cluster: one `SSUBSCRIBE` per partition channel
//! that has a room of this node, sent to the master owning its slot, and kept there across
//! failovers by this module, not by the client library.
//!
//! redis-rs resubscribes a cluster connection's shard channels itself, but loses them after a
//! failover (it takes the server's `sunsubscribe` for the confirmation of one of ours) and sends
//! one `SSUBSCRIBE` for channels of several slots, which Redis refuses (docs/upstream/
//! redis-rs-sharded-pubsub-failover.md). So this task treats every `sunsubscribe` it did not ask
//! for, and every lost node connection, as the loss of those channels: it subscribes each again,
//! one command per channel (a partition channel is one slot), where the slot lives now, retrying
//! with a capped back-off while the cluster elects a new master, and then has the rooms of the
//! channels it got back read from the store, since what was published meanwhile was not heard.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::cluster_async::ClusterConnection;
use redis::{PushInfo, PushKind, Value};
use tokio::sync::{mpsc, oneshot, watch};

/// The first wait before subscribing lost channels again; doubled up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_millis(100);
/// The longest wait between two attempts (a master's replica is promoted within the cluster's
/// node timeout, 15 s by default).
const RETRY_MAX: Duration = Duration::from_secs(1);

/// A change of the partition channels a room of this node needs.
#[derive(Debug)]
pub(crate) enum ShardCmd {
    /// One more room needs the channel; `ack` is answered once it is subscribed (at once when it
    /// already was; while the cluster does not answer it waits with the channel, and is dropped
    /// if the room leaves first).
    Subscribe(String, Option<oneshot::Sender<()>>),
    /// One room less needs the channel; the last one unsubscribes it.
    Unsubscribe(String),
}

/// What the shard link needs from the broadcaster.
#[async_trait]
pub(crate) trait ShardHandler: Send + Sync + 'static {
    /// A payload received on a partition channel.
    fn on_payload(&self, channel: &str, payload: &[u8]);
    /// These channels were subscribed again after being lost: read their rooms from the store.
    async fn on_resubscribed(&self, channels: &HashSet<String>);
    /// The shard subscriptions are all in place (`true`) or some are lost (`false`).
    fn on_status(&self, complete: bool, detail: String);
}

/// The link's state.
struct Shards {
    client: redis::cluster::ClusterClient,
    conn: Option<ClusterConnection>,
    /// How many rooms need each channel.
    wanted: HashMap<String, usize>,
    /// Wanted channels not subscribed now, with the acks waiting for them.
    lost: HashMap<String, Vec<oneshot::Sender<()>>>,
    /// Lost channels that had been subscribed (their rooms are read again once they are back).
    were_up: HashSet<String>,
    /// `SUNSUBSCRIBE`s of ours whose confirmation push has not been seen yet (redis-rs hands it
    /// to the push sender too): not a loss.
    own_unsubscribes: HashMap<String, u32>,
    op_timeout: Duration,
    backoff: Duration,
    /// Whether every wanted channel was subscribed at the last attempt.
    complete: bool,
}

/// The cluster client of the shard link and the receiver of its pushes (messages, and the
/// `sunsubscribe`s and disconnections that tell of lost channels); fails on a malformed URL.
pub(crate) fn client(
    nodes: Vec<String>,
    op_timeout: Duration,
) -> redis::RedisResult<(redis::cluster::ClusterClient, mpsc::UnboundedReceiver<PushInfo>)> {
    let (push_tx, pushes) = mpsc::unbounded_channel::<PushInfo>();
    let client = redis::cluster::ClusterClientBuilder::new(nodes)
        .use_protocol(redis::ProtocolVersion::RESP3)
        .push_sender(push_tx)
        .connection_timeout(op_timeout)
        .response_timeout(op_timeout)
        .retries(2)
        .build()?;
    Ok((client, pushes))
}

/// Runs the shard link until `stop` turns true or the command channel closes.
pub(crate) async fn run(
    (client, mut pushes): (redis::cluster::ClusterClient, mpsc::UnboundedReceiver<PushInfo>),
    handler: Arc<dyn ShardHandler>,
    mut cmds: mpsc::UnboundedReceiver<ShardCmd>,
    mut stop: watch::Receiver<bool>,
    op_timeout: Duration,
) {
    let mut s = Shards {
        client,
        conn: None,
        wanted: HashMap::new(),
        lost: HashMap::new(),
        were_up: HashSet::new(),
        own_unsubscribes: HashMap::new(),
        op_timeout,
        backoff: RETRY_MIN,
        complete: true,
    };
    let mut retry_at = tokio::time::Instant::now();
    loop {
        let retry = tokio::time::sleep_until(retry_at);
        tokio::select! {
            () = retry, if !s.lost.is_empty() => {
                s.subscribe_lost(&handler).await;
                retry_at = tokio::time::Instant::now() + s.backoff;
            }
            push = pushes.recv() => match push {
                Some(push) => {
                    if s.on_push(push, &*handler) {
                        retry_at = tokio::time::Instant::now();
                    }
                }
                None => break,
            },
            cmd = cmds.recv() => match cmd {
                Some(ShardCmd::Subscribe(channel, ack)) => {
                    // Lost channels already wait for their retry: a new one joins them then.
                    let waiting = !s.lost.is_empty();
                    if s.want(channel, ack) && !waiting {
                        retry_at = tokio::time::Instant::now();
                    }
                }
                Some(ShardCmd::Unsubscribe(channel)) => s.unwant(&channel).await,
                None => break,
            },
            _ = stop.changed() => break,
        }
    }
}

impl Shards {
    /// Counts one more room on `channel`; returns whether it must be subscribed now.
    fn want(&mut self, channel: String, ack: Option<oneshot::Sender<()>>) -> bool {
        let count = self.wanted.entry(channel.clone()).or_insert(0);
        *count += 1;
        match (self.lost.get_mut(&channel), *count == 1) {
            (Some(acks), _) => {
                acks.extend(ack);
                false
            }
            (None, true) => {
                self.lost.insert(channel, ack.into_iter().collect());
                true
            }
            (None, false) => {
                if let Some(ack) = ack {
                    let _ = ack.send(());
                }
                false
            }
        }
    }

    async fn unwant(&mut self, channel: &str) {
        let Some(count) = self.wanted.get_mut(channel) else { return };
        *count -= 1;
        if *count > 0 {
            return;
        }
        self.wanted.remove(channel);
        self.were_up.remove(channel);
        self.lost.remove(channel);
        // Even when counted lost (after a disconnection it may still be subscribed elsewhere);
        // a failure leaves a subscription the rooms no longer need: its payloads are ignored.
        if let Some(conn) = &mut self.conn
            && let Ok(Ok(())) = tokio::time::timeout(self.op_timeout, conn.sunsubscribe(channel)).await
        {
            *self.own_unsubscribes.entry(channel.to_owned()).or_insert(0) += 1;
        }
    }

    /// Handles a push; returns whether channels were lost (to subscribe again at once).
    fn on_push(&mut self, push: PushInfo, handler: &dyn ShardHandler) -> bool {
        match push.kind {
            PushKind::SMessage => {
                if let [Value::BulkString(channel), Value::BulkString(payload), ..] = &push.data[..] {
                    handler.on_payload(&String::from_utf8_lossy(channel), payload);
                }
                false
            }
            // Not asked for (the channel is still wanted): its slot moved to another master.
            PushKind::SUnsubscribe => {
                let Some(Value::BulkString(channel)) = push.data.first() else { return false };
                let channel = String::from_utf8_lossy(channel).into_owned();
                if let Some(own) = self.own_unsubscribes.get_mut(&channel) {
                    *own -= 1;
                    if *own == 0 {
                        self.own_unsubscribes.remove(&channel);
                    }
                    return false;
                }
                if !self.wanted.contains_key(&channel) || self.lost.contains_key(&channel) {
                    return false;
                }
                tracing::info!(channel = %channel, "redis cluster: a shard channel was unsubscribed by the server (its slot moved); subscribing it again");
                self.lose([channel], handler)
            }
            // A node's connection was lost: which channels it held is not known, so all are
            // subscribed again (where they still are, that changes nothing).
            PushKind::Disconnection => {
                tracing::info!("redis cluster: a node connection was lost; subscribing every shard channel again");
                let all: Vec<String> = self.wanted.keys().cloned().collect();
                self.lose(all, handler)
            }
            _ => false,
        }
    }

    fn lose(&mut self, channels: impl IntoIterator<Item = String>, handler: &dyn ShardHandler) -> bool {
        let before = self.lost.len();
        for channel in channels {
            if !self.lost.contains_key(&channel) {
                self.were_up.insert(channel.clone());
                self.lost.insert(channel, Vec::new());
            }
        }
        self.backoff = RETRY_MIN;
        let lost = self.lost.len() > before;
        if lost {
            let detail = format!("redis cluster: {} shard channels to subscribe again", self.lost.len());
            self.status(handler, false, detail);
        }
        lost
    }

    /// Subscribes every lost channel, one command each; reads again the rooms of those that
    /// had been subscribed before.
    async fn subscribe_lost(&mut self, handler: &Arc<dyn ShardHandler>) {
        let conn = match &self.conn {
            Some(c) => c.clone(),
            None => match tokio::time::timeout(self.op_timeout, self.client.get_async_connection()).await {
                Ok(Ok(c)) => {
                    self.conn = Some(c.clone());
                    c
                }
                Ok(Err(e)) => return self.failed(&**handler, format!("connect: {e}")),
                Err(_) => return self.failed(&**handler, format!("connect: no answer within {:?}", self.op_timeout)),
            },
        };
        let channels: Vec<String> = self.lost.keys().cloned().collect();
        let op_timeout = self.op_timeout;
        let attempts = channels.iter().map(|channel| {
            let mut conn = conn.clone();
            async move { (channel, tokio::time::timeout(op_timeout, conn.ssubscribe(channel)).await) }
        });
        let mut back = HashSet::new();
        let mut error = None;
        for (channel, result) in futures_util::future::join_all(attempts).await {
            match result {
                Ok(Ok(())) => {
                    back.insert(channel.clone());
                }
                Ok(Err(e)) => error = Some(format!("ssubscribe {channel}: {e}")),
                Err(_) => error = Some(format!("ssubscribe {channel}: no answer within {op_timeout:?}")),
            }
        }
        let mut refill = HashSet::new();
        for channel in back {
            for ack in self.lost.remove(&channel).unwrap_or_default() {
                let _ = ack.send(());
            }
            if self.were_up.remove(&channel) {
                refill.insert(channel);
            }
        }
        if !refill.is_empty() {
            // Its own task: the store's reads must not hold up live payloads and new rooms.
            let handler = Arc::clone(handler);
            tokio::spawn(async move { handler.on_resubscribed(&refill).await });
        }
        match error {
            Some(error) => self.failed(&**handler, error),
            None => {
                self.backoff = RETRY_MIN;
                let detail = format!("redis cluster: {} shard channels subscribed", self.wanted.len());
                self.status(&**handler, true, detail);
            }
        }
    }

    /// Tells the handler when the subscriptions become complete or incomplete.
    fn status(&mut self, handler: &dyn ShardHandler, complete: bool, detail: String) {
        if self.complete != complete {
            self.complete = complete;
            handler.on_status(complete, detail);
        }
    }

    fn failed(&mut self, handler: &dyn ShardHandler, error: String) {
        tracing::warn!(error = %error, lost = self.lost.len(), "redis cluster: shard channels not subscribed; retrying");
        self.status(handler, false, format!("redis cluster: {error}"));
        self.backoff = (self.backoff * 2).min(RETRY_MAX);
    }
}
