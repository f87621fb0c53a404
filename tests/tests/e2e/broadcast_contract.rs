//! The `Broadcaster` contract, run against every broadcaster: each check of
//! `labchat_tests::broadcast_contract` on `labchat_memory::LocalBroadcaster` and on
//! `labchat_broadcast_redis::RedisBroadcaster` over the test Redis server (`LABCHAT_TEST_REDIS_URL`,
//! set by `scripts/test.sh`; without it the Redis checks fail, saying so).

use labchat_tests::broadcast_contract::{self, BroadcastFixture};

macro_rules! broadcast_tests {
    ($($check:ident),* $(,)?) => {
        mod on_memory {
            use super::*;
            $(
                #[tokio::test]
                async fn $check() {
                    broadcast_contract::$check(&BroadcastFixture::memory()).await;
                }
            )*
        }

        mod on_redis {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    broadcast_contract::$check(&BroadcastFixture::redis().await).await;
                }
            )*
        }
    };
}

labchat_tests::for_each_broadcast_check!(broadcast_tests);
