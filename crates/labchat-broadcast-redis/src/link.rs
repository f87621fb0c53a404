//! The node's Redis pub/sub connection: a task that connects, subscribes the rooms that have
//! local sinks, hands every received payload over, and on any error or a server-side kill marks
//! the backplane down, backs off (capped), reconnects, resubscribes and lets the broadcaster
//! catch up from the store before marking it up again. On a cluster it carries the ordinary
//! channels (inbox and resync notices; rooms are on `shards`) and tries its nodes in turn.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot, watch};

/// The first back-off after a failed connection; doubled up to [`BACKOFF_MAX`].
const BACKOFF_MIN: Duration = Duration::from_millis(50);
/// The longest back-off between two connection attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Most channels subscribed in one command (as many as wait in turn, up to this): the same
/// chunk as the resubscription after a reconnect.
const SUBSCRIBE_AT_ONCE: usize = 512;

/// A change of the subscribed channels, sent by the broadcaster in the order it decided them.
#[derive(Debug)]
pub(crate) enum LinkCmd {
    /// Subscribe the channel; `ack` is answered once the server confirmed it (dropped when the
    /// link is down: the channel is subscribed at the next connection).
    Subscribe(String, Option<oneshot::Sender<()>>),
    /// Unsubscribe the channel.
    Unsubscribe(String),
    /// Subscribe the pattern (`PSUBSCRIBE`); `ack` as for [`LinkCmd::Subscribe`].
    PSubscribe(String, Option<oneshot::Sender<()>>),
    /// Unsubscribe the pattern.
    PUnsubscribe(String),
}

/// What the link needs from the broadcaster.
#[async_trait]
pub(crate) trait LinkHandler: Send + Sync + 'static {
    /// Every channel that must be subscribed now (the rooms with local sinks).
    fn channels(&self) -> Vec<String>;
    /// Every pattern that must be subscribed now.
    fn patterns(&self) -> Vec<String>;
    /// A payload received on a subscribed channel.
    fn on_payload(&self, channel: &str, payload: &[u8]);
    /// The link (re)connected and resubscribed: catch up what was missed (before it is marked up).
    async fn on_connected(&self);
    /// The link is up (`true`) or down (`false`), with a detail for operators.
    fn on_status(&self, connected: bool, detail: String);
}

/// Why a connection ended.
enum Ended {
    /// Shutdown was asked, or the broadcaster is gone.
    Stop,
    /// An error; `was_up` says whether the connection had been fully set up.
    Failed { error: String, was_up: bool },
}

/// Runs the link until `stop` turns true or the command channel closes; each connection attempt
/// goes to the next of `clients`.
pub(crate) async fn run(
    clients: Vec<redis::Client>,
    handler: Arc<dyn LinkHandler>,
    mut cmds: mpsc::UnboundedReceiver<LinkCmd>,
    mut stop: watch::Receiver<bool>,
    op_timeout: Duration,
    ping_every: Duration,
) {
    let mut backoff = BACKOFF_MIN;
    let mut attempt = 0_usize;
    loop {
        if *stop.borrow() {
            break;
        }
        let Some(client) = clients.get(attempt % clients.len().max(1)) else { break };
        attempt = attempt.wrapping_add(1);
        match serve(client, &*handler, &mut cmds, &mut stop, (op_timeout, ping_every)).await {
            Ended::Stop => break,
            Ended::Failed { error, was_up } => {
                tracing::warn!(error = %error, "redis pub/sub link down; reconnecting");
                handler.on_status(false, error);
                if was_up {
                    backoff = BACKOFF_MIN;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => break,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
    handler.on_status(false, "stopped".to_owned());
}

fn failed(what: &str, e: impl std::fmt::Display, was_up: bool) -> Ended {
    Ended::Failed { error: format!("redis pub/sub: {what}: {e}"), was_up }
}

async fn timed<T>(
    op_timeout: Duration,
    what: &str,
    was_up: bool,
    fut: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, Ended> {
    match tokio::time::timeout(op_timeout, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(failed(what, e, was_up)),
        Err(_) => Err(failed(what, format!("no answer within {op_timeout:?}"), was_up)),
    }
}

/// One connection's life: connect, resubscribe, catch up, then serve until it fails. A PING
/// every `ping_every` detects a server that stopped answering without closing the connection.
async fn serve(
    client: &redis::Client,
    handler: &dyn LinkHandler,
    cmds: &mut mpsc::UnboundedReceiver<LinkCmd>,
    stop: &mut watch::Receiver<bool>,
    (op_timeout, ping_every): (Duration, Duration),
) -> Ended {
    let pubsub = match timed(op_timeout, "connect", false, client.get_async_pubsub()).await {
        Ok(p) => p,
        Err(e) => return e,
    };
    let (mut sink, mut stream) = pubsub.split();
    // Changes asked while down are covered by the snapshot of the channels taken after them.
    let mut acks = Vec::new();
    while let Ok(cmd) = cmds.try_recv() {
        if let LinkCmd::Subscribe(_, Some(ack)) | LinkCmd::PSubscribe(_, Some(ack)) = cmd {
            acks.push(ack);
        }
    }
    let channels = handler.channels();
    for chunk in channels.chunks(SUBSCRIBE_AT_ONCE) {
        if let Err(e) = timed(op_timeout, "resubscribe", false, sink.subscribe(chunk)).await {
            return e;
        }
    }
    for pattern in handler.patterns() {
        if let Err(e) = timed(op_timeout, "resubscribe", false, sink.psubscribe(&pattern)).await {
            return e;
        }
    }
    for ack in acks {
        let _ = ack.send(());
    }
    handler.on_connected().await;
    handler.on_status(true, format!("redis pub/sub connected, {} rooms subscribed", channels.len()));
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ping.tick() => {
                if let Err(e) = timed(op_timeout, "ping", true, sink.ping::<redis::Value>()).await {
                    return e;
                }
            }
            message = stream.next() => match message {
                Some(m) => handler.on_payload(m.get_channel_name(), m.get_payload_bytes()),
                None => return failed("connection", "closed by the server or lost", true),
            },
            cmd = cmds.recv() => {
                let mut next = match cmd {
                    Some(cmd) => Some(cmd),
                    None => return Ended::Stop,
                };
                while let Some(cmd) = next.take() {
                    next = match apply(&mut sink, cmd, cmds, op_timeout).await {
                        Ok(next) => next,
                        Err(e) => return e,
                    };
                }
            }
            _ = stop.changed() => return Ended::Stop,
        }
    }
}

/// Carries out one change of the subscriptions on a connected link. A SUBSCRIBE takes the ones
/// waiting behind it (up to [`SUBSCRIBE_AT_ONCE`]), in one command: a join storm's new rooms are
/// confirmed in a few round trips, not one each. Returns the command that ended the run of
/// SUBSCRIBEs, to carry out next (the order of changes is kept).
async fn apply(
    sink: &mut redis::aio::PubSubSink,
    cmd: LinkCmd,
    cmds: &mut mpsc::UnboundedReceiver<LinkCmd>,
    op_timeout: Duration,
) -> Result<Option<LinkCmd>, Ended> {
    match cmd {
        LinkCmd::Subscribe(channel, ack) => {
            let (mut channels, mut acks) = (vec![channel], vec![ack]);
            let mut next = None;
            while channels.len() < SUBSCRIBE_AT_ONCE {
                match cmds.try_recv() {
                    Ok(LinkCmd::Subscribe(channel, ack)) => {
                        channels.push(channel);
                        acks.push(ack);
                    }
                    Ok(other) => {
                        next = Some(other);
                        break;
                    }
                    Err(_) => break,
                }
            }
            timed(op_timeout, "subscribe", true, sink.subscribe(&channels)).await?;
            for ack in acks.into_iter().flatten() {
                let _ = ack.send(());
            }
            return Ok(next);
        }
        LinkCmd::Unsubscribe(channel) => timed(op_timeout, "unsubscribe", true, sink.unsubscribe(&channel)).await?,
        LinkCmd::PSubscribe(pattern, ack) => {
            timed(op_timeout, "psubscribe", true, sink.psubscribe(&pattern)).await?;
            if let Some(ack) = ack {
                let _ = ack.send(());
            }
        }
        LinkCmd::PUnsubscribe(pattern) => timed(op_timeout, "punsubscribe", true, sink.punsubscribe(&pattern)).await?,
    }
    Ok(None)
}
