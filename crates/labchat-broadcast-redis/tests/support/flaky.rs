//! A store whose history reads fail while it is told to (or the next few), over the shared
//! in-memory store: a node's reads of the store fail, and the other node's reads and writes go on.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use labchat_core::{ChatStore, Hooked, StoreCall, StoreError, StoreFuture, StoreHook};

/// The hook: fails `history` calls while `failing`, and the next `next` ones.
#[derive(Default)]
pub struct FailHistory {
    failing: AtomicBool,
    next: AtomicU32,
}

impl FailHistory {
    /// From now on, history reads fail (`true`) or succeed again.
    pub fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// The next `n` history reads fail.
    pub fn fail_next(&self, n: u32) {
        self.next.store(n, Ordering::SeqCst);
    }

    fn fails_now(&self) -> bool {
        self.failing.load(Ordering::SeqCst)
            || self.next.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
    }
}

impl StoreHook for FailHistory {
    fn around<'a, T: Send + 'static>(&'a self, call: StoreCall, inner: StoreFuture<'a, T>) -> StoreFuture<'a, T> {
        if call.op == "history" && self.fails_now() {
            return Box::pin(async { Err(StoreError::unavailable("read a room's history", "the test fails it")) });
        }
        inner
    }
}

/// `inner` behind a [`FailHistory`] hook.
pub fn failing_history(inner: Arc<dyn ChatStore>) -> Arc<Hooked<FailHistory>> {
    Arc::new(Hooked::new(inner, FailHistory::default()))
}
