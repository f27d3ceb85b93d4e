//! `theater:simple/runtime`: log, get-chain, shutdown. Always granted.

use theater_chain::StoredEvent;
use wasmtime::StoreContextMut;

use super::{HostFuture, HostLinker, Plain, RecordAs};
use crate::actor::ActorCtx;
use crate::bindings::theater::simple::types::{Chain, Event, MetaEvent};

/// Granted to every actor, whether its manifest lists it or not.
pub(crate) const HANDLER: Plain = Plain {
    name: "runtime",
    interfaces: &["theater:simple/runtime"],
    link: Some(link),
    always_granted: true,
};

fn link(linker: &mut HostLinker<'_>) -> wasmtime::Result<()> {
    let mut runtime = linker.interface("theater:simple/runtime")?;
    runtime.func("log", RecordAs::Value, log)?;
    runtime.func_from_chain("get-chain", RecordAs::ChainRef, get_chain, chain_result)?;
    runtime.func("shutdown", RecordAs::Value, shutdown)?;
    Ok(())
}

fn log(store: StoreContextMut<'_, ActorCtx>, (msg,): (String,)) -> HostFuture<'_, ()> {
    Box::pin(async move {
        store.data().log(&msg);
        Ok(())
    })
}

fn get_chain(store: StoreContextMut<'_, ActorCtx>, (): ()) -> HostFuture<'_, (Chain,)> {
    Box::pin(async move {
        let source = store.data().chain.source().clone();
        Ok(chain_result(source.read_all().await?))
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
        ctx.shutdown_requested = Some(data);
        Ok((Ok(()),))
    })
}
