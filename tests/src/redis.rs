//! The test Redis server: `scripts/test.sh` starts one (`scripts/redis-test-server.sh`) and sets
//! `LABCHAT_TEST_REDIS_URL`. Tests that leave Redis alone share it, each in rooms of its own;
//! a test that kills or cuts Redis starts one of its own ([`crate::process::RedisServer`]).

/// The environment variable holding the test Redis server's URL.
pub const URL_VAR: &str = "LABCHAT_TEST_REDIS_URL";

/// The test Redis server's URL, from [`URL_VAR`].
///
/// # Panics
///
/// When the variable is not set, saying how to run the Redis tests: a Redis test never passes
/// by skipping.
pub fn test_redis_url() -> String {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "{URL_VAR} is not set, so this Redis test cannot run (it fails rather than skip). Run \
             the tests with `scripts/test.sh` (it starts the test Redis server and sets {URL_VAR}), \
             or start the server yourself: `scripts/redis-test-server.sh start` then `export \
             {URL_VAR}=$(scripts/redis-test-server.sh uri)`."
        ),
    }
}

/// A node id no other node on the test Redis server uses: `name`, this process's id and a
/// counter.
pub fn fresh_node_id(name: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    format!("{name}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}
