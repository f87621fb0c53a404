//! Observability: the Prometheus recorder behind `GET /metrics`, and a store decorator that
//! measures every store operation.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use labchat_core::{ChatStore, Inserted, Marked, StoreError};
use labchat_domain::{
    CatchUp, HistoryLimit, HistoryPage, HistoryQuery, InboxPage, InboxQuery, InboxRow, Message, MessageId, ReceiptKind,
    Request, RequestId, Seq, Timestamp, User, UserId,
};
use labchat_transport_ws::MetricsRenderer;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Latency buckets, in seconds, for the store and broadcast histograms.
const BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide Prometheus recorder (once; later calls reuse it) and returns the
/// renderer for `GET /metrics`. `None` if another recorder was installed first.
pub fn metrics_renderer() -> Option<MetricsRenderer> {
    let handle = HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().set_buckets(BUCKETS).and_then(PrometheusBuilder::install_recorder);
        match recorder {
            Ok(handle) => {
                describe();
                let upkeep = handle.clone();
                // Histograms are drained into their buckets by the upkeep; keep it going.
                std::thread::Builder::new()
                    .name("metrics-upkeep".into())
                    .spawn(move || {
                        loop {
                            std::thread::sleep(Duration::from_secs(5));
                            upkeep.run_upkeep();
                        }
                    })
                    .map_err(|e| tracing::warn!(error = %e, "metrics upkeep thread not started"))
                    .ok();
                Some(handle)
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics recorder not installed; /metrics is disabled");
                None
            }
        }
    });
    handle.clone().map(|h| Arc::new(move || h.render()) as MetricsRenderer)
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_gauge!("labchat_connections_open", "Open websocket connections.");
    describe_gauge!(
        "labchat_connections_pending",
        "Connections accepted on the chat listener and not (yet) upgraded to a websocket."
    );
    describe_counter!(
        "labchat_accept_errors_total",
        "Failed accepts (such as out of file descriptors); accepting backs off."
    );
    describe_gauge!("labchat_rooms_joined", "Room subscriptions held by open connections.");
    describe_counter!("labchat_frames_in_total", "Client frames received, by event (invalid: not decodable).");
    describe_counter!("labchat_frames_out_total", "Server frames queued, by event.");
    describe_counter!("labchat_errors_total", "Error frames sent, by code.");
    describe_counter!("labchat_handshake_rejections_total", "Refused websocket handshakes, by reason.");
    describe_histogram!(
        "labchat_store_op_seconds",
        Unit::Seconds,
        "Store operation latency, by operation and outcome."
    );
    describe_histogram!("labchat_broadcast_seconds", Unit::Seconds, "Time to hand one room event to every subscriber.");
    describe_counter!("labchat_messages_stored_total", "Messages stored (duplicates of idempotent sends excluded).");
}

/// A [`ChatStore`] that records `labchat_store_op_seconds{op, outcome}` around every call and
/// `labchat_messages_stored_total`, then defers to the inner store.
pub struct MeteredStore {
    inner: Arc<dyn ChatStore>,
}

impl std::fmt::Debug for MeteredStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeteredStore").finish_non_exhaustive()
    }
}

impl MeteredStore {
    /// Measures `inner`.
    pub fn new(inner: Arc<dyn ChatStore>) -> Self {
        Self { inner }
    }
}

fn record<T>(op: &'static str, started: Instant, result: &Result<T, StoreError>) {
    let outcome = match result {
        Ok(_) => "ok",
        Err(StoreError::Unavailable { .. }) => "unavailable",
        Err(StoreError::Internal { .. }) => "internal",
    };
    metrics::histogram!("labchat_store_op_seconds", "op" => op, "outcome" => outcome).record(started.elapsed());
}

#[async_trait]
impl ChatStore for MeteredStore {
    async fn find_request(&self, id: RequestId) -> Result<Option<Request>, StoreError> {
        let t = Instant::now();
        let r = self.inner.find_request(id).await;
        record("find_request", t, &r);
        r
    }

    async fn insert_message(&self, message: &Message) -> Result<Inserted, StoreError> {
        let t = Instant::now();
        let r = self.inner.insert_message(message).await;
        record("insert_message", t, &r);
        if matches!(r, Ok(Inserted::New(_))) {
            metrics::counter!("labchat_messages_stored_total").increment(1);
        }
        r
    }

    async fn changed(
        &self,
        request: RequestId,
        catch_up: CatchUp,
        limit: HistoryLimit,
    ) -> Result<HistoryPage, StoreError> {
        let t = Instant::now();
        let r = self.inner.changed(request, catch_up, limit).await;
        record("changed", t, &r);
        r
    }

    async fn history(&self, request: RequestId, query: HistoryQuery) -> Result<Option<HistoryPage>, StoreError> {
        let t = Instant::now();
        let r = self.inner.history(request, query).await;
        record("history", t, &r);
        r
    }

    async fn mark(
        &self,
        request: RequestId,
        user: &UserId,
        kind: ReceiptKind,
        ids: &[MessageId],
        at: Timestamp,
    ) -> Result<Marked, StoreError> {
        let t = Instant::now();
        let r = self.inner.mark(request, user, kind, ids, at).await;
        record("mark", t, &r);
        r
    }

    async fn inbox(&self, viewer: &User, query: InboxQuery) -> Result<InboxPage, StoreError> {
        let t = Instant::now();
        let r = self.inner.inbox(viewer, query).await;
        record("inbox", t, &r);
        r
    }

    async fn inbox_rows(&self, request: RequestId, users: &[UserId]) -> Result<Vec<InboxRow>, StoreError> {
        let t = Instant::now();
        let r = self.inner.inbox_rows(request, users).await;
        record("inbox_rows", t, &r);
        r
    }

    async fn unread_count(&self, request: RequestId, user: &UserId) -> Result<u64, StoreError> {
        let t = Instant::now();
        let r = self.inner.unread_count(request, user).await;
        record("unread_count", t, &r);
        r
    }

    async fn first_unread(&self, request: RequestId, user: &UserId) -> Result<Option<MessageId>, StoreError> {
        let t = Instant::now();
        let r = self.inner.first_unread(request, user).await;
        record("first_unread", t, &r);
        r
    }

    async fn message(&self, request: RequestId, id: MessageId) -> Result<Option<Message>, StoreError> {
        let t = Instant::now();
        let r = self.inner.message(request, id).await;
        record("message", t, &r);
        r
    }

    async fn update_message(&self, message: &Message) -> Result<bool, StoreError> {
        let t = Instant::now();
        let r = self.inner.update_message(message).await;
        record("update_message", t, &r);
        r
    }

    async fn count_deleted(&self, message: &Message) -> Result<(), StoreError> {
        let t = Instant::now();
        let r = self.inner.count_deleted(message).await;
        record("count_deleted", t, &r);
        r
    }

    async fn count_posted(&self, message: &Message, seq: Seq) -> Result<(), StoreError> {
        let t = Instant::now();
        let r = self.inner.count_posted(message, seq).await;
        record("count_posted", t, &r);
        r
    }

    async fn count_read(&self, request: RequestId, user: &UserId, n: u64) -> Result<(), StoreError> {
        let t = Instant::now();
        let r = self.inner.count_read(request, user, n).await;
        record("count_read", t, &r);
        r
    }

    async fn recount(&self, request: RequestId, user: &UserId) -> Result<(), StoreError> {
        let t = Instant::now();
        let r = self.inner.recount(request, user).await;
        record("recount", t, &r);
        r
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let t = Instant::now();
        let r = self.inner.ping().await;
        record("ping", t, &r);
        r
    }

    fn seq_seen(&self, request: RequestId, seq: Seq) {
        self.inner.seq_seen(request, seq);
    }
}
