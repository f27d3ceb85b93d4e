//! What an actor's context reaches of the runtime it runs in: the [`Services`] trait. The
//! instance wrapper (`actor`) holds the runtime only as this trait object, so it names neither
//! the scheduler nor the runtime's tables; `shared` implements it.

use std::any::Any;
use std::path::Path;
use std::sync::Arc;

use theater_chain::ChainWriter;
use theater_store::ContentStore;

/// One line an actor logged.
pub struct LogLine<'a> {
    pub actor_id: &'a str,
    pub actor_name: &'a str,
    pub message: &'a str,
}

/// Where actors' log lines go.
pub type LogSink = Arc<dyn Fn(&LogLine<'_>) + Send + Sync>;

/// The runtime's services, as an actor's context sees them.
pub(crate) trait Services: Send + Sync + 'static {
    /// Where its log lines go.
    fn log_sink(&self) -> &LogSink;
    /// The places among the running actors, with hibernation on.
    fn call_places(&self) -> Option<&Arc<tokio::sync::Semaphore>>;
    /// Whether idle actors hibernate (so that a full pool can make room).
    fn hibernating(&self) -> bool;
    /// Hibernates the live, parked actor idle the longest; whether there was one.
    fn hibernate_least_recently_used(&self) -> bool;
    /// The data dir's chain writer, if the runtime persists.
    fn chain_writer(&self) -> Option<&Arc<ChainWriter>>;
    /// The data dir's content store, if the runtime persists.
    fn content_store(&self) -> Option<&Arc<ContentStore>>;
    /// The data dir, if any.
    fn data_dir(&self) -> Option<&Path>;
    /// The services as `Any`, for the modules above that know the concrete type.
    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}
