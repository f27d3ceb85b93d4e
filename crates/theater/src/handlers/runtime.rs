//! `theater:simple/runtime` (log, get-chain, shutdown) and `theater:simple/chain` (ranged
//! reads of chains). Always granted.

use theater_chain::{HostResult, StoredEvent};
use wasmtime::StoreContextMut;

use crate::actor::ActorCtx;
use crate::bindings::theater::simple::types::{Chain, ChainEvent, Event, MetaEvent};
use crate::host::{HostFuture, HostLinker, Plain, RecordAs};
use crate::log_rate::{MAX_LOG_LINE_BYTES, held_back_notice};
use crate::recording::ChainSource;

/// Granted to every actor, whether its manifest lists it or not.
pub(crate) const HANDLER: Plain = Plain {
    name: "runtime",
    interfaces: &["theater:simple/runtime", "theater:simple/chain"],
    link: Some(link),
    always_granted: true,
};

fn link(linker: &mut HostLinker<'_>) -> wasmtime::Result<()> {
    let mut runtime = linker.interface("theater:simple/runtime")?;
    runtime.func("log", RecordAs::Value, log)?;
    runtime.func_from_chain("get-chain", RecordAs::ChainRef, get_chain, chain_result)?;
    runtime.func("shutdown", RecordAs::Value, shutdown)?;
    let mut chain = linker.interface("theater:simple/chain")?;
    // Recorded by value: a range is small (see `MAX_RANGE_EVENTS`), and a replay needs it.
    chain.func("read-own", RecordAs::Value, read_own)?;
    chain.func("read-child", RecordAs::Value, read_child)?;
    Ok(())
}

fn log(mut store: StoreContextMut<'_, ActorCtx>, (msg,): (String,)) -> HostFuture<'_, ()> {
    Box::pin(async move {
        let ctx = store.data_mut();
        let Some(dropped) = ctx.log_budget.take() else {
            return Ok(());
        };
        if dropped > 0 {
            ctx.log(&held_back_notice(dropped));
        }
        if msg.len() > MAX_LOG_LINE_BYTES {
            let mut cut = MAX_LOG_LINE_BYTES;
            while !msg.is_char_boundary(cut) {
                cut -= 1;
            }
            ctx.log(&format!(
                "{}… ({} more bytes not printed)",
                &msg[..cut],
                msg.len() - cut
            ));
        } else {
            ctx.log(&msg);
        }
        Ok(())
    })
}

fn get_chain(mut store: StoreContextMut<'_, ActorCtx>, (): ()) -> HostFuture<'_, (Chain,)> {
    Box::pin(async move {
        let source = store.data().chain.source().clone();
        let events = source.read_whole().await?;
        // What was read is a prefix of this chain: recorded by its length and last hash.
        store.data_mut().note.result = Some(HostResult::ChainRef {
            len: events.len() as u64,
            head: events.last().map(|(s, _)| s.hash).unwrap_or_default(),
        });
        Ok(chain_result(events))
    })
}

/// Events `start..` of `source` (at most `max`), each with the hash of the one before it.
pub(crate) async fn read_range(
    source: &ChainSource,
    start: u64,
    max: u32,
) -> wasmtime::Result<Vec<ChainEvent>> {
    let events = source.read_range(start, max).await?;
    let parent_hash = match (events.is_empty(), start.checked_sub(1)) {
        (false, Some(before)) => source.hash_at(before).await?.map(|h| h.0.to_vec()),
        _ => None,
    };
    Ok(chain_events(events, parent_hash))
}

/// Events in the WIT's `chain-event` form, linked to `parent_hash` first.
pub(crate) fn chain_events(
    events: Vec<(StoredEvent, theater_chain::Event)>,
    mut parent_hash: Option<Vec<u8>>,
) -> Vec<ChainEvent> {
    events
        .into_iter()
        .map(|(stored, event)| {
            let hash = stored.hash.0.to_vec();
            ChainEvent {
                parent_hash: parent_hash.replace(hash.clone()),
                hash,
                event_type: event.kind.type_name().to_owned(),
                data: stored.bytes,
                timestamp: event.timestamp_ms,
            }
        })
        .collect()
}

fn read_own(
    store: StoreContextMut<'_, ActorCtx>,
    (start, max): (u64, u32),
) -> HostFuture<'_, (Result<Vec<ChainEvent>, String>,)> {
    Box::pin(async move {
        let source = store.data().chain.source().clone();
        Ok((read_range(&source, start, max)
            .await
            .map_err(|e| crate::error::one_line(&e)),))
    })
}

fn read_child(
    store: StoreContextMut<'_, ActorCtx>,
    (child, start, max): (String, u64, u32),
) -> HostFuture<'_, (Result<Vec<ChainEvent>, String>,)> {
    Box::pin(async move {
        let child =
            match super::supervisor::child_of_caller(super::supervisor::me(store.data()), &child)
                .await?
            {
                Ok(child) => child,
                Err(e) => return Ok((Err(e),)),
            };
        Ok((read_range(&child.chain, start, max)
            .await
            .map_err(|e| crate::error::one_line(&e)),))
    })
}

/// The guest's view of a chain's events.
fn chain_result(events: Vec<(StoredEvent, theater_chain::Event)>) -> (Chain,) {
    let events = events
        .into_iter()
        .enumerate()
        .map(|(i, (stored, event))| MetaEvent {
            hash: stored.hash.short(),
            event: Event {
                event_type: event.kind.type_name().to_owned(),
                parent: i.checked_sub(1).map(|p| p as u64),
                data: stored.bytes,
            },
        })
        .collect();
    (Chain { events },)
}

fn shutdown(
    mut store: StoreContextMut<'_, ActorCtx>,
    (data,): (Option<Vec<u8>>,),
) -> HostFuture<'_, (Result<(), String>,)> {
    Box::pin(async move {
        let ctx = store.data_mut();
        if ctx.shutdown_requested.is_some() {
            return Ok((Err("shutdown was already requested during this call".into()),));
        }
        // The data is a message to the parent: held to this actor's message limit, which a
        // child's is within its parent's.
        let max = ctx.manifest.messaging.max_message_bytes as usize;
        if let Some(len) = data.as_ref().map(Vec::len).filter(|&len| len > max) {
            return Ok((Err(format!(
                "shutdown data of {len} bytes is over this actor's limit of {max} bytes ([messaging] max_message_bytes)"
            )),));
        }
        ctx.shutdown_requested = Some(data);
        Ok((Ok(()),))
    })
}
