//! Wiring: builds the concrete adapters and the transport from settings. `main` only parses
//! configuration and calls into here; tests call the same functions.

use std::sync::Arc;
use std::time::Duration;

use labchat_broadcast_redis::{PresenceSettings, RedisBroadcaster, RedisPresence, RedisSettings};
use labchat_core::{
    BroadcastError, Broadcaster, Chat, ChatStore, Clock, JoinAdmission, Presence, PresenceBurst, StoreError,
    SystemClock,
};
use labchat_domain::{HistoryLimit, Request, RequestId, UserId};
use labchat_store_mongo::{MongoSettings, MongoStore};
use labchat_transport_ws::{AuthSettings, Authenticator, KeyError, Server, WsConfig};
use serde::Deserialize;

use crate::observe;
use labchat_memory::{LocalBroadcaster, MemoryPresence, MemoryStore};

/// Which store to use.
#[derive(Debug, Clone)]
pub enum StoreSettings {
    /// The in-memory store, seeded with these requests. Nothing persists.
    Memory {
        /// Requests to load at start.
        seed: Vec<Request>,
    },
    /// MongoDB.
    Mongo(MongoSettings),
}

/// Everything needed to build a server.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Token verification.
    pub auth: AuthSettings,
    /// History page size on join, and the largest `history` page.
    pub history_limit: HistoryLimit,
    /// Transport limits and timings.
    pub ws: WsConfig,
    /// The store.
    pub store: StoreSettings,
    /// The cross-node backplane; `None`: this node serves alone.
    pub backplane: Option<BackplaneSettings>,
    /// How many presence changes a room announces one by one per interval.
    pub presence_burst: PresenceBurst,
    /// How long a join's history page may serve the next joins of its room (see
    /// [`Chat::with_join_reuse`]).
    pub join_reuse: Duration,
    /// How many joins run at once, and how long one more waits for a slot.
    pub join_admission: JoinAdmission,
}

/// The Redis backplane that joins several nodes into one chat (see docs/deployment.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackplaneSettings {
    /// Redis connection string, e.g. `redis://127.0.0.1:6379/` (one server; on a cluster the
    /// first of its nodes).
    pub redis_url: String,
    /// One server, or a Redis Cluster and its nodes.
    pub topology: labchat_broadcast_redis::Topology,
    /// This node's name in envelopes, logs and metrics.
    pub node_id: String,
    /// How often each quiet room is checked against the store.
    pub check_interval: std::time::Duration,
    /// The bounds of the outbox of envelopes to publish again.
    pub outbox: labchat_broadcast_redis::OutboxBounds,
    /// The most messages a room holds ahead of a gap.
    pub reorder_max_per_room: usize,
    /// The most messages the node holds ahead of gaps, all rooms together.
    pub reorder_max_per_node: usize,
    /// The envelope version this node writes.
    pub envelope_version: labchat_broadcast_redis::EnvelopeVersion,
    /// The secrets that seal and check envelopes (none: not authenticated).
    pub secrets: labchat_broadcast_redis::BackplaneSecrets,
}

/// Why the server could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A setting is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The JWT key does not fit the algorithm.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The store could not be opened.
    #[error("could not open the store: {0}")]
    Store(#[from] StoreError),
    /// The backplane could not be started (a malformed URL; Redis being down is not an error).
    #[error("could not start the Redis backplane: {0}")]
    Backplane(#[from] BroadcastError),
}

/// A built server, and the in-memory store when that is the one in use (to seed it).
#[derive(Debug)]
pub struct App {
    /// The transport, ready for [`labchat_transport_ws::run`].
    pub server: Arc<Server>,
    /// The in-memory store, if used.
    pub memory: Option<Arc<MemoryStore>>,
    /// The single-node broadcaster (its counts show subscriptions), when there is no backplane.
    pub broadcaster: Option<Arc<LocalBroadcaster>>,
    /// The Redis backplane, when configured: stop it with [`RedisBroadcaster::shutdown`] after
    /// the server stopped.
    pub backplane: Option<Arc<RedisBroadcaster>>,
}

/// Builds the store, the use cases and the transport. Presence is kept in process, or in Redis
/// (shared by the nodes) with a backplane.
pub async fn build(settings: Settings) -> Result<App, AppError> {
    // The metrics recorder first: a value an adapter records while it starts (the backplane's
    // `connected`, set once when it connects) is lost if no recorder is installed yet.
    let metrics = observe::metrics_renderer();
    let auth = Authenticator::new(&settings.auth)?;
    let (store, memory): (Arc<dyn ChatStore>, _) = match settings.store {
        StoreSettings::Memory { seed } => {
            tracing::warn!(
                requests = seed.len(),
                "using the in-memory store: nothing is persisted; set --mongo-uri for MongoDB"
            );
            let mem = Arc::new(MemoryStore::new());
            for r in seed {
                mem.add_request(r);
            }
            (Arc::new(observe::metered(mem.clone())), Some(mem))
        }
        StoreSettings::Mongo(mongo) => {
            tracing::info!(database = %mongo.database, "using the MongoDB store");
            (Arc::new(observe::metered(Arc::new(MongoStore::connect(mongo).await?))), None)
        }
    };
    let (broadcaster, presence, local, backplane): (Arc<dyn Broadcaster>, Arc<dyn Presence>, _, _) =
        match settings.backplane {
            Some(b) => {
                tracing::info!(node_id = %b.node_id, "using the Redis backplane: this node is one of several");
                let redis_settings = RedisSettings {
                    url: b.redis_url,
                    topology: b.topology,
                    node_id: b.node_id,
                    check_interval: b.check_interval,
                    outbox: b.outbox,
                    reorder_max_per_room: b.reorder_max_per_room,
                    reorder_max_per_node: b.reorder_max_per_node,
                    envelope_version: b.envelope_version,
                    secrets: b.secrets,
                    creator_ttl: settings.ws.access_recheck_interval,
                    ..RedisSettings::default()
                };
                let redis = RedisBroadcaster::start(redis_settings.clone(), Arc::clone(&store))?;
                let presence = RedisPresence::start(&redis_settings, PresenceSettings::default(), redis.clone())?;
                (redis.clone(), presence, None, Some(redis))
            }
            None => {
                let local = Arc::new(LocalBroadcaster::new());
                (local.clone(), Arc::new(MemoryPresence::new()), Some(local), None)
            }
        };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let chat = Chat::new(store, Arc::clone(&broadcaster), Arc::clone(&clock), settings.history_limit)
        .with_access_ttl(settings.ws.access_recheck_interval)
        .with_edit_window(settings.ws.edit_window)
        .with_presence(presence)
        .with_presence_burst(settings.presence_burst)
        .with_join_reuse(settings.join_reuse)
        .with_join_admission(settings.join_admission);
    broadcaster.listen_inbox(chat.inbox_listener());
    let mut server = Server::new(Arc::new(chat), auth, settings.ws, clock);
    if let Some(render) = metrics {
        server = server.with_metrics(render);
    }
    Ok(App { server: Arc::new(server), memory, broadcaster: local, backplane })
}

/// Parses a seed file: a JSON array of `{"id": "<24-hex>", "createdBy": "<user id>"}`.
pub fn parse_seed(json: &str) -> Result<Vec<Request>, AppError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Seed {
        id: String,
        created_by: String,
    }
    let seeds: Vec<Seed> =
        serde_json::from_str(json).map_err(|e| AppError::Config(format!("seed requests file: {e}")))?;
    seeds
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let id = RequestId::parse(&s.id).map_err(|e| AppError::Config(format!("seed requests [{i}].id: {e}")))?;
            let by = UserId::parse(s.created_by)
                .map_err(|e| AppError::Config(format!("seed requests [{i}].createdBy: {e}")))?;
            Ok(Request::new(id, by))
        })
        .collect()
}

/// Raises the process's open-file limit (the soft one) to its hard limit and logs the result;
/// warns when it is below `wanted`, the descriptors the configured connection limits may need.
/// Returns the limit now in force, if it could be read.
pub fn raise_open_file_limit(wanted: u64) -> Option<u64> {
    #[cfg(unix)]
    {
        let (before, hard) = match rlimit::Resource::NOFILE.get() {
            Ok(limits) => limits,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the open-file limit");
                return None;
            }
        };
        let now = match rlimit::increase_nofile_limit(hard) {
            Ok(now) => now,
            Err(e) => {
                tracing::warn!(error = %e, before, hard, "could not raise the open-file limit");
                before
            }
        };
        tracing::info!(before, now, hard, "open-file limit");
        if now < wanted {
            tracing::warn!(
                limit = now,
                wanted,
                "the open-file limit is below what the connection limits allow; accepts will back off when it is reached"
            );
        }
        Some(now)
    }
    #[cfg(not(unix))]
    {
        let _ = wanted;
        None
    }
}

/// The default store timeout.
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_files_are_validated() {
        let ok = parse_seed(r#"[{"id":"6751b6df1ad14eaa13a03313","createdBy":"t1"}]"#).unwrap();
        assert_eq!(ok[0].created_by().map(UserId::as_str), Some("t1"));
        for (bad, needle) in [
            (r#"[{"id":"xyz","createdBy":"t1"}]"#, "[0].id"),
            (r#"[{"id":"6751b6df1ad14eaa13a03313","createdBy":""}]"#, "[0].createdBy"),
            (r#"{"id":1}"#, "seed requests file"),
            (r#"[{"id":"6751b6df1ad14eaa13a03313"}]"#, "createdBy"),
        ] {
            let err = parse_seed(bad).unwrap_err().to_string();
            assert!(err.contains(needle), "{bad}: {err}");
        }
    }
}
