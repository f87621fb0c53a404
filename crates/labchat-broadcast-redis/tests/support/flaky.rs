//! A store whose history reads fail while it is told to, over the shared in-memory store: a
//! node's fills from the store fail, and the other node's reads and writes go on.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use labchat_core::{ChatStore, Hooked, StoreCall, StoreError, StoreFuture, StoreHook};

/// The hook: fails `history` calls while `failing`.
#[derive(Default)]
pub struct FailHistory {
    failing: AtomicBool,
}

impl FailHistory {
    /// From now on, history reads fail (`true`) or succeed again.
    pub fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }
}

impl StoreHook for FailHistory {
    fn around<'a, T: Send + 'static>(&'a self, call: StoreCall, inner: StoreFuture<'a, T>) -> StoreFuture<'a, T> {
        if call.op == "history" && self.failing.load(Ordering::SeqCst) {
            return Box::pin(async { Err(StoreError::unavailable("read a room's history", "the test fails it")) });
        }
        inner
    }
}

/// `inner` behind a [`FailHistory`] hook.
pub fn failing_history(inner: Arc<dyn ChatStore>) -> Arc<Hooked<FailHistory>> {
    Arc::new(Hooked::new(inner, FailHistory::default()))
}
