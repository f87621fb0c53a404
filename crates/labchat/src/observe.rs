//! Observability: the Prometheus recorder behind `GET /metrics`, and a store decorator that
//! measures every store operation.

use std::any::Any;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use labchat_core::{ChatStore, Hooked, Inserted, StoreCall, StoreError, StoreFuture, StoreHook};
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
    describe_counter!(
        "labchat_join_history_reuses_total",
        "Joins served the history page an earlier join of their room read, instead of reading the store."
    );
    describe_counter!("labchat_frames_in_total", "Client frames received, by event (invalid: not decodable).");
    describe_counter!("labchat_frames_out_total", "Server frames queued, by event.");
    describe_counter!("labchat_errors_total", "Error frames sent, by code.");
    describe_counter!(
        "labchat_joins_refused_total",
        "Joins refused (UNAVAILABLE with retryAfterMs) because the node ran --max-joins-in-flight joins."
    );
    describe_counter!("labchat_handshake_rejections_total", "Refused websocket handshakes, by reason.");
    describe_histogram!(
        "labchat_store_op_seconds",
        Unit::Seconds,
        "Store operation latency, by operation and outcome."
    );
    describe_histogram!("labchat_broadcast_seconds", Unit::Seconds, "Time to hand one room event to every subscriber.");
    describe_counter!("labchat_messages_stored_total", "Messages stored (duplicates of idempotent sends excluded).");
}

/// Records `labchat_store_op_seconds{op, outcome}` around every store call and
/// `labchat_messages_stored_total`; the store is [`metered`], a [`Hooked`] one.
#[derive(Debug)]
pub struct Metered;

/// The store behind a [`Metered`] hook.
pub type MeteredStore = Hooked<Metered>;

/// Measures `inner`.
pub fn metered(inner: Arc<dyn ChatStore>) -> MeteredStore {
    Hooked::new(inner, Metered)
}

fn record<T>(op: &'static str, started: Instant, result: &Result<T, StoreError>) {
    let outcome = match result {
        Ok(_) => "ok",
        Err(StoreError::Unavailable { .. }) => "unavailable",
        Err(StoreError::Internal { .. }) => "internal",
    };
    metrics::histogram!("labchat_store_op_seconds", "op" => op, "outcome" => outcome).record(started.elapsed());
}

impl StoreHook for Metered {
    fn around<'a, T: Send + 'static>(&'a self, call: StoreCall, inner: StoreFuture<'a, T>) -> StoreFuture<'a, T> {
        Box::pin(async move {
            let t = Instant::now();
            let r = inner.await;
            record(call.op, t, &r);
            let stored = r.as_ref().ok().and_then(|v| (v as &dyn Any).downcast_ref::<Inserted>());
            if matches!(stored, Some(Inserted::New(_))) {
                metrics::counter!("labchat_messages_stored_total").increment(1);
            }
            r
        })
    }
}
