//! How a downstream team unit-tests labchat's use cases: with the ports' `mockall` mocks (to say
//! exactly which calls a use case may make) and with the in-memory adapters of `labchat-memory`
//! (to run a use case for real, without any server).
//!
//! Run it as a test: `cargo test -p labchat-core --features mocks --example testing_use_cases`.

fn main() {
    // The example is its tests; `main` only says how to run them.
    tracing::info!("run: cargo test -p labchat-core --features mocks --example testing_use_cases");
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use labchat_core::{Chat, ChatError, MockBroadcaster, MockChatStore, MockClock, SystemClock};
    use labchat_domain::{Cursor, HistoryLimit, MessageText, Request, RequestId, Role, Timestamp, User, UserId};
    use labchat_memory::{LocalBroadcaster, MemoryStore};

    fn request_id() -> RequestId {
        RequestId::parse("6751b6df1ad14eaa13a03313").unwrap()
    }
    fn teacher(id: &str) -> User {
        User::new(UserId::parse(id).unwrap(), Role::Teacher)
    }

    /// With the mocks: a teacher who did not create the request may not post, and the use case
    /// neither stores nor broadcasts anything (the mocks fail the test on any such call).
    #[tokio::test]
    async fn a_stranger_cannot_post_and_nothing_is_stored_or_broadcast() {
        let mut store = MockChatStore::new();
        store.expect_find_request().returning(|id| Ok(Some(Request::new(id, UserId::parse("the-creator").unwrap()))));
        store.expect_insert_message().never();
        let mut broadcaster = MockBroadcaster::new();
        broadcaster.expect_publish().never();
        let mut clock = MockClock::new();
        clock.expect_now().return_const(Timestamp::from_unix_millis(1_700_000_000_000));
        let chat = Chat::new(Arc::new(store), Arc::new(broadcaster), Arc::new(clock), HistoryLimit::DEFAULT);

        let text = MessageText::parse("hello", 100).unwrap();
        let refused = chat.post(&teacher("someone-else"), request_id(), text, None).await;

        assert!(matches!(refused, Err(ChatError::Forbidden)), "a stranger's post: {refused:?}");
    }

    /// With the in-memory adapters: the creator posts, and the message is in the room's history
    /// with seq 1.
    #[tokio::test]
    async fn the_creator_posts_and_reads_it_back_from_history() {
        let store = Arc::new(MemoryStore::new());
        store.add_request(Request::new(request_id(), UserId::parse("the-creator").unwrap()));
        let chat = Chat::new(store, Arc::new(LocalBroadcaster::new()), Arc::new(SystemClock), HistoryLimit::DEFAULT);
        let creator = teacher("the-creator");

        let posted = chat.post(&creator, request_id(), MessageText::parse("hello", 100).unwrap(), None).await.unwrap();
        let page = chat.history(&creator, request_id(), Cursor::Latest, None).await.unwrap();

        assert_eq!(page.messages.len(), 1);
        assert_eq!(page.messages[0].id, posted.message.id);
        assert_eq!(page.messages[0].seq.map(|s| s.get()), Some(1), "the first message of a room has seq 1");
    }
}
