//! Capturing one test's log lines without racing the other tests of the same binary.
//!
//! `tracing` caches, per call site, whether any subscriber is interested in it. A test that sets
//! a thread-local subscriber while another thread first hits the same call site (with no
//! subscriber there) can find the site cached as "never", and its events are dropped: a flaky
//! "expected one log line, got none". [`set_default`] first installs, once per binary, a global
//! subscriber that answers "sometimes" for every call site and enables nothing, so no site can be
//! cached as "never" and each event asks the subscriber of the thread it runs on.

use std::sync::Once;

use tracing::subscriber::{DefaultGuard, Interest};
use tracing::{Event, Metadata, Subscriber, span};

/// Sets `subscriber` as this thread's default, race-free with other threads' call sites (see the
/// module docs). The tests run on a current-thread runtime, so a request's events land here.
pub fn set_default<S>(subscriber: S) -> DefaultGuard
where
    S: Subscriber + Send + Sync + 'static,
{
    static GLOBAL: Once = Once::new();
    GLOBAL.call_once(|| {
        // Fails only if a global subscriber is set already, which then serves the same end.
        let _ = tracing::subscriber::set_global_default(AskEachTime);
    });
    tracing::subscriber::set_default(subscriber)
}

/// Enables nothing, but never lets a call site be cached as uninteresting.
struct AskEachTime;

impl Subscriber for AskEachTime {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        Interest::sometimes()
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::TRACE)
    }
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        false
    }
    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}
