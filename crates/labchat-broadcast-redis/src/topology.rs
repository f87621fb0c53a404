//! Where Redis is, and what that decides: the channel a room's envelopes travel on, how its
//! presence keys are named, and the connections commands go through.
//!
//! On one server a room has a channel of its own (`labchat:room:<hex>`), published with
//! `PUBLISH`. On a Redis Cluster rooms are hashed into [`PARTITIONS`] sharded channels
//! (`labchat:shard:{p<n>}`, `SPUBLISH`/`SSUBSCRIBE`), each one hash slot: a node holds one shard
//! subscription per partition that has a room of its, at most [`PARTITIONS`], whatever the number
//! of rooms, and every message is handled only by the shard that owns its partition. A room's
//! presence keys carry its partition's hash tag, so that the scripts touching a room's keys (and
//! the refresh of the rooms of one partition) stay within one slot. Inbox notices and resync
//! notices stay on ordinary channels, which a cluster delivers to every node's subscribers.

use labchat_domain::RequestId;
use redis::aio::ConnectionLike;
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

/// How many sharded channels the rooms are spread over on a cluster. Every node of a deployment
/// must use the same number: it is a constant of the release, not a setting.
pub const PARTITIONS: u32 = 64;

/// The prefix of every sharded room channel.
const SHARD_PREFIX: &str = "labchat:shard:";

/// One Redis server, or a Redis Cluster. Its `Debug` form hides the URLs' passwords.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum Topology {
    /// One server, at [`crate::RedisSettings::url`].
    #[default]
    Single,
    /// A Redis Cluster (7 or later, for sharded pub/sub): the URLs of some of its nodes (any
    /// reachable one is enough to learn the others); [`crate::RedisSettings::url`] is not used.
    Cluster {
        /// `redis://host:port/` of one or more nodes of the cluster.
        nodes: Vec<String>,
    },
}

impl std::fmt::Debug for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Single => f.write_str("Single"),
            Self::Cluster { nodes } => f
                .debug_struct("Cluster")
                .field("nodes", &nodes.iter().map(|n| redacted(n)).collect::<Vec<_>>())
                .finish(),
        }
    }
}

/// The URL with its user information (which may hold a password) replaced by `***`.
pub(crate) fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}***{}", &url[..scheme + 3], &url[at..]),
        _ => url.to_owned(),
    }
}

impl Topology {
    /// Whether this is a cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster { .. })
    }

    /// The channel a room's envelopes are published on (on a cluster, shared by the rooms of its
    /// partition).
    pub fn room_channel(&self, room: RequestId) -> String {
        match self {
            Self::Single => format!("labchat:room:{}", room.to_hex()),
            Self::Cluster { .. } => shard_channel(partition(room)),
        }
    }

    /// The hash tag of a room's presence keys (`{p<n>}:`), empty on one server (where key names
    /// are those of earlier releases).
    pub(crate) fn key_tag(&self, room: RequestId) -> String {
        match self {
            Self::Single => String::new(),
            Self::Cluster { .. } => format!("{{p{}}}:", partition(room)),
        }
    }

    /// Which rooms may share one multi-key script call: all on one server, one partition's on a
    /// cluster.
    pub(crate) fn key_group(&self, room: RequestId) -> u32 {
        match self {
            Self::Single => 0,
            Self::Cluster { .. } => partition(room),
        }
    }
}

/// The partition of a room: FNV-1a of its id's bytes, modulo [`PARTITIONS`]. Every node and
/// every release must compute the same.
pub(crate) fn partition(room: RequestId) -> u32 {
    let hash =
        room.object_id().bytes().iter().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(*b)).wrapping_mul(0x0100_0193));
    hash % PARTITIONS
}

/// The sharded channel of a partition; the hash tag makes it one slot.
pub(crate) fn shard_channel(partition: u32) -> String {
    format!("{SHARD_PREFIX}{{p{partition}}}")
}

/// Whether a channel is a sharded room channel (published with `SPUBLISH`).
pub(crate) fn is_shard_channel(channel: &str) -> bool {
    channel.starts_with(SHARD_PREFIX)
}

/// What opens connections for commands (publishing, presence): a client of one server or of the
/// cluster.
#[derive(Clone)]
pub(crate) enum Connector {
    Single(redis::Client),
    Cluster(Box<redis::cluster::ClusterClient>),
}

impl Connector {
    /// The connector of `topology`; fails on a malformed URL.
    pub(crate) fn new(url: &str, topology: &Topology) -> RedisResult<Self> {
        Ok(match topology {
            Topology::Single => Self::Single(redis::Client::open(url)?),
            Topology::Cluster { nodes } => Self::Cluster(Box::new(redis::cluster::ClusterClient::new(nodes.clone())?)),
        })
    }

    /// A new multiplexed connection (to every node the cluster's commands need).
    pub(crate) async fn connect(&self) -> RedisResult<Conn> {
        Ok(match self {
            Self::Single(c) => Conn::Single(c.get_multiplexed_async_connection().await?),
            Self::Cluster(c) => Conn::Cluster(c.get_async_connection().await?),
        })
    }
}

/// A connection of a [`Connector`]; commands with keys go to the node owning their slot.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl Conn {
    /// Whether commands of different slots must be sent apart (one pipeline per channel).
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(cmd, offset, count),
            Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use labchat_domain::ObjectIdBytes;

    use super::*;

    #[test]
    fn rooms_keep_their_channel_on_one_server_and_share_a_partition_channel_on_a_cluster() {
        let room = RequestId::parse("6751b6df1ad14eaa13a03313").unwrap();
        assert_eq!(Topology::Single.room_channel(room), "labchat:room:6751b6df1ad14eaa13a03313");
        assert_eq!(Topology::Single.key_tag(room), "");
        let cluster = Topology::Cluster { nodes: vec![] };
        let channel = cluster.room_channel(room);
        assert_eq!(channel, format!("labchat:shard:{{p{}}}", partition(room)));
        assert!(is_shard_channel(&channel) && !is_shard_channel(&Topology::Single.room_channel(room)));
        assert_eq!(cluster.key_tag(room), format!("{{p{}}}:", partition(room)));
    }

    #[test]
    fn the_partition_is_a_fixed_function_of_the_id_spread_over_every_partition() {
        // Fixed across releases: nodes of two releases must agree.
        assert_eq!(partition(RequestId::from_object_id(ObjectIdBytes::from_bytes([0; 12]))), 53);
        assert_eq!(partition(RequestId::parse("6751b6df1ad14eaa13a03313").unwrap()), 42);
        let mut seen = std::collections::HashSet::new();
        for i in 0..2_000_u32 {
            seen.insert(partition(RequestId::from_object_id(ObjectIdBytes::from_parts(
                1_700_000_000,
                [1, 2, 3, 4, 5],
                i,
            ))));
        }
        assert_eq!(seen.len(), PARTITIONS as usize, "2,000 consecutive ids reach every partition");
    }
}
