//! dockerd's `max-concurrent-downloads` and `max-concurrent-uploads`: at most N
//! layer transfers at once across every pull (or push) of the daemon; the others
//! wait their turn, shown as Docker's "Waiting". The limit changes on reload.

use std::sync::Mutex;
use tokio::sync::Notify;

pub struct Limiter {
    /// (transfers running, the limit; 0: none).
    state: Mutex<(usize, usize)>,
    freed: Notify,
}

/// One running transfer; its slot is free again when this is dropped.
pub struct Slot<'a>(&'a Limiter);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.state.lock().unwrap_or_else(|p| p.into_inner()).0 -= 1;
        self.0.freed.notify_waiters();
    }
}

impl Limiter {
    pub fn new(limit: usize) -> Limiter {
        Limiter {
            state: Mutex::new((0, limit)),
            freed: Notify::new(),
        }
    }

    pub fn set_limit(&self, limit: usize) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).1 = limit;
        self.freed.notify_waiters();
    }

    /// A slot if one is free now.
    pub fn try_take(&self) -> Option<Slot<'_>> {
        let mut g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if g.1 != 0 && g.0 >= g.1 {
            return None;
        }
        g.0 += 1;
        Some(Slot(self))
    }

    /// Waits for a slot.
    pub async fn take(&self) -> Slot<'_> {
        loop {
            // Registered before the check, so a release in between is not missed.
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if let Some(s) = self.try_take() {
                return s;
            }
            freed.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn at_most_the_limit_run_and_a_release_lets_the_next_in() {
        let l = std::sync::Arc::new(Limiter::new(2));
        let a = l.try_take().unwrap();
        let _b = l.try_take().unwrap();
        assert!(l.try_take().is_none());
        let l2 = l.clone();
        let waiter = tokio::spawn(async move {
            let _s = l2.take().await;
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(a);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("the waiter got the freed slot")
            .unwrap();
        // Raised on reload: more at once; 0: no limit.
        l.set_limit(3);
        let _c = l.try_take().unwrap();
        let _d = l.try_take().unwrap();
        assert!(l.try_take().is_none(), "b, c and d run");
        l.set_limit(0);
        assert!(l.try_take().is_some());
    }
}
