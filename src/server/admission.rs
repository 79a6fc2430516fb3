//! What the listener knows of each connection, to choose which to close at
//! capacity: whether it is serving an authenticated request (never closed
//! then), whether it ever has, and how to tell it to close.
//!
//! A request counts as serving from the moment its front-end has
//! authenticated and authorised it ([`Hold::authenticated`]) until its
//! response body ends. Before that (a half-sent head, a form whose fields
//! trickle in ahead of its signature) the connection may be shed, so that
//! unauthenticated clients cannot hold places that authenticated ones need.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::Notify;

#[derive(Default)]
pub struct Activity {
    /// Authenticated requests whose responses have not ended.
    busy: AtomicUsize,
    /// Whether any request on it was ever authenticated.
    served: AtomicBool,
    /// Set (and notified) when the connection is shed.
    shed: AtomicBool,
    wake: Notify,
}

impl Activity {
    pub fn idle(&self) -> bool {
        self.busy.load(Ordering::SeqCst) == 0
    }

    pub fn served(&self) -> bool {
        self.served.load(Ordering::SeqCst)
    }

    pub fn is_shed(&self) -> bool {
        self.shed.load(Ordering::SeqCst)
    }

    /// Tells the connection to close once no request on it is serving.
    pub fn shed(&self) {
        self.shed.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Resolves when the connection is told to close.
    pub async fn shed_signal(&self) {
        self.wake.notified().await
    }
}

/// One request's hold on its connection, in the request's extensions and
/// in its response body: once authenticated, the connection serves until
/// the last of the two is dropped.
pub struct Hold {
    activity: Arc<Activity>,
    held: AtomicBool,
}

impl Hold {
    pub fn new(activity: Arc<Activity>) -> Arc<Hold> {
        Arc::new(Hold {
            activity,
            held: AtomicBool::new(false),
        })
    }

    /// The request is authenticated and authorised: its connection is not
    /// shed until its response ends.
    pub fn authenticated(&self) {
        if !self.held.swap(true, Ordering::SeqCst) {
            self.activity.busy.fetch_add(1, Ordering::SeqCst);
            self.activity.served.store(true, Ordering::SeqCst);
        }
    }

    /// Marks the request in `extensions` as authenticated, if it has a
    /// hold (requests built in tests have none).
    pub fn mark(extensions: &http::Extensions) {
        if let Some(hold) = extensions.get::<Arc<Hold>>() {
            hold.authenticated();
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if *self.held.get_mut() {
            self.activity.busy.fetch_sub(1, Ordering::SeqCst);
        }
    }
}
