//! The `Presence` contract, run against every presence: each check of
//! `labchat_tests::presence_contract` on `labchat_memory::MemoryPresence` and on
//! `labchat_broadcast_redis::RedisPresence` over the test Redis server (`LABCHAT_TEST_REDIS_URL`,
//! set by `scripts/test.sh`; without it the Redis checks fail, saying so).

use labchat_tests::presence_contract::{self, PresenceFixture};

macro_rules! presence_tests {
    ($($check:ident),* $(,)?) => {
        mod on_memory {
            use super::*;
            $(
                #[tokio::test]
                async fn $check() {
                    presence_contract::$check(&PresenceFixture::memory()).await;
                }
            )*
        }

        mod on_redis {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    presence_contract::$check(&PresenceFixture::redis()).await;
                }
            )*
        }
    };
}

labchat_tests::for_each_presence_check!(presence_tests);
