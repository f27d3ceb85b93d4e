//! `theater:simple/timing`: the wall clock and sleeping. Granted by the `timing` handler.
//!
//! Every result is recorded, so a replay sees the same clock and skips the waiting.

use std::time::Duration;

use theater::plugin::wasmtime;
use theater::plugin::wasmtime::StoreContextMut;

use theater::plugin::{ActorCtx, now_ms};
use theater::plugin::{HostFuture, HostLinker, Plain, RecordAs};

type Answer<T> = (Result<T, String>,);

/// The `timing` handler: no settings.
pub(crate) const HANDLER: Plain = Plain {
    name: "timing",
    interfaces: &["theater:simple/timing"],
    link: Some(link),
    always_granted: false,
};

fn link(linker: &mut HostLinker<'_>) -> wasmtime::Result<()> {
    let mut timing = linker.interface("theater:simple/timing")?;
    timing.func("now", RecordAs::Value, now)?;
    timing.func("sleep", RecordAs::Value, sleep)?;
    timing.func("deadline", RecordAs::Value, deadline)?;
    Ok(())
}

fn now(_: StoreContextMut<'_, ActorCtx>, (): ()) -> HostFuture<'_, (u64,)> {
    Box::pin(async move { Ok((now_ms(),)) })
}

/// Waits `duration` ms. The actor's call stays in progress (it takes no other message) and can
/// still be stopped: a stop that outlasts the shutdown timeout kills the call.
fn sleep(_: StoreContextMut<'_, ActorCtx>, (duration,): (u64,)) -> HostFuture<'_, Answer<()>> {
    Box::pin(async move {
        tokio::time::sleep(Duration::from_millis(duration)).await;
        Ok((Ok(()),))
    })
}

/// Waits until `timestamp` (ms since the Unix epoch); returns at once if it has passed.
fn deadline(_: StoreContextMut<'_, ActorCtx>, (timestamp,): (u64,)) -> HostFuture<'_, Answer<()>> {
    Box::pin(async move {
        let wait = timestamp.saturating_sub(now_ms());
        tokio::time::sleep(Duration::from_millis(wait)).await;
        Ok((Ok(()),))
    })
}
