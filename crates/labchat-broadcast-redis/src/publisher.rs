//! The PUBLISH side: a task with its own multiplexed connection that sends the node's envelopes
//! in the order they were handed over, batched into pipelines. Redis being down never makes a
//! publish fail or wait: the envelope is dropped, logged and counted (other nodes fill the gap
//! from the store).

use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use crate::metrics_names::PUBLISH_ERRORS;

/// How long after a failed connection attempt envelopes are dropped without trying again.
const RETRY_AFTER: Duration = Duration::from_millis(250);
/// The most envelopes sent in one pipeline.
const BATCH: usize = 256;

/// One envelope to publish.
#[derive(Debug)]
pub(crate) struct Outgoing {
    /// The room's channel.
    pub(crate) channel: String,
    /// The encoded envelope.
    pub(crate) payload: Vec<u8>,
}

/// Counts and logs envelopes that could not be published.
pub(crate) fn dropped(node: &str, count: usize, error: &str) {
    metrics::counter!(PUBLISH_ERRORS, "node" => node.to_owned()).increment(count as u64);
    tracing::warn!(node, error = %error, envelopes = count, "publishing to redis failed; other nodes will fill from the store");
}

/// Counts envelopes dropped while Redis stays unreachable; logged once when it starts failing.
struct Failures<'a> {
    node: &'a str,
    failing: bool,
}

impl Failures<'_> {
    fn dropped(&mut self, count: usize, error: &str) {
        if self.failing {
            metrics::counter!(PUBLISH_ERRORS, "node" => self.node.to_owned()).increment(count as u64);
            tracing::debug!(node = self.node, error = %error, envelopes = count, "publishing to redis failed");
        } else {
            self.failing = true;
            dropped(self.node, count, error);
        }
    }

    fn succeeded(&mut self) {
        if self.failing {
            self.failing = false;
            tracing::info!(node = self.node, "publishing to redis again");
        }
    }
}

/// Runs until `stop` turns true or every sender is gone.
pub(crate) async fn run(
    node: String,
    client: redis::Client,
    mut rx: mpsc::Receiver<Outgoing>,
    mut stop: watch::Receiver<bool>,
    op_timeout: Duration,
) {
    let mut conn: Option<redis::aio::MultiplexedConnection> = None;
    let mut retry_at: Option<Instant> = None;
    let mut failures = Failures { node: &node, failing: false };
    loop {
        let first = tokio::select! {
            o = rx.recv() => match o { Some(o) => o, None => break },
            _ = stop.changed() => break,
        };
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(o) => batch.push(o),
                Err(_) => break,
            }
        }
        let c = match conn.as_mut() {
            Some(c) => c,
            None => {
                if retry_at.is_some_and(|t| Instant::now() < t) {
                    failures.dropped(batch.len(), "redis unreachable (retrying shortly)");
                    continue;
                }
                match tokio::time::timeout(op_timeout, client.get_multiplexed_async_connection()).await {
                    Ok(Ok(c)) => {
                        retry_at = None;
                        conn.insert(c)
                    }
                    Ok(Err(e)) => {
                        retry_at = Some(Instant::now() + RETRY_AFTER);
                        failures.dropped(batch.len(), &format!("connect: {e}"));
                        continue;
                    }
                    Err(_) => {
                        retry_at = Some(Instant::now() + RETRY_AFTER);
                        failures.dropped(batch.len(), &format!("connect: no answer within {op_timeout:?}"));
                        continue;
                    }
                }
            }
        };
        let mut pipe = redis::pipe();
        for o in &batch {
            pipe.cmd("PUBLISH").arg(&o.channel).arg(&o.payload).ignore();
        }
        let result = tokio::time::timeout(op_timeout, pipe.query_async::<()>(c)).await;
        let error = match result {
            Ok(Ok(())) => {
                failures.succeeded();
                continue;
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {op_timeout:?}"),
        };
        conn = None;
        failures.dropped(batch.len(), &format!("publish: {error}"));
    }
}
