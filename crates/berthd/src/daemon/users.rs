//! How a subsystem learns who uses what it owns without importing its users: the
//! network, volume and image services each define a small trait (`NetworkUsers`,
//! `VolumeUsers`, `ImageUsers`) that the container service implements, and hold it
//! here, weakly, once berthd has wired them together. Dependencies thus run one
//! way: containers know networks, volumes and images; those know only the trait.

use std::sync::{OnceLock, Weak};

pub struct Users<T: ?Sized>(OnceLock<Weak<T>>);

impl<T: ?Sized> Default for Users<T> {
    fn default() -> Self {
        Users(OnceLock::new())
    }
}

impl<T: ?Sized> Users<T> {
    /// Set once at start; a second call is a wiring mistake and is ignored.
    pub fn set(&self, users: Weak<T>) {
        if self.0.set(users).is_err() {
            tracing::error!("a subsystem's users were wired twice; the first stays");
        }
    }

    /// Calls `f` with the users, or gives `none` before they are wired or after
    /// they are gone (at shutdown).
    pub fn with<R>(&self, none: R, f: impl FnOnce(&T) -> R) -> R {
        match self.0.get().and_then(Weak::upgrade) {
            Some(u) => f(&u),
            None => none,
        }
    }
}
