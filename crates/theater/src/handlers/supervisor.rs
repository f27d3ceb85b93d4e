//! `theater:simple/supervisor`: spawning and managing children. Granted by the `supervisor`
//! handler. Restart decisions are the runtime's (`crate::lifecycle`), from the parent's
//! `[supervision]` settings.

use std::sync::Arc;
use std::time::Duration;

use theater_chain::HostResult;
use wasmtime::StoreContextMut;
use wasmtime::component::Linker;

use super::{HostFuture, InterfaceBuilder, RecordAs};
use crate::actor::ActorCtx;
use crate::bindings::theater::simple::types::ChainEvent;
use crate::cell::{Cell, Start, StopCause, StopRequest};
use crate::lifecycle;
use crate::manifest::{Manifest, ManifestOrigin};
use crate::runtime::Shared;

type Answer<T> = (Result<T, String>,);

pub(crate) fn add_to_linker(
    linker: &mut Linker<ActorCtx>,
    registered: &mut Vec<(&'static str, &'static str)>,
) -> wasmtime::Result<()> {
    let mut host = InterfaceBuilder::new(linker, "theater:simple/supervisor", registered)?;
    host.func("spawn", RecordAs::Value, spawn)?;
    host.func("resume", RecordAs::Value, resume)?;
    host.func("list-children", RecordAs::Value, list_children)?;
    host.func("stop-child", RecordAs::Value, stop_child)?;
    host.func("restart-child", RecordAs::Value, restart_child)?;
    host.func("get-child-state", RecordAs::Value, get_child_state)?;
    host.func_from_chain(
        "get-child-events",
        RecordAs::Value,
        get_child_events,
        child_events_result,
    )?;
    Ok(())
}

/// The runtime and the calling actor's cell.
fn me(ctx: &ActorCtx) -> wasmtime::Result<(Arc<Shared>, Arc<Cell>)> {
    let shared = ctx.shared()?;
    let cell = shared
        .cell(&ctx.id)
        .ok_or_else(|| wasmtime::format_err!("actor {} is not running", ctx.id))?;
    Ok((shared, cell))
}

/// A child manifest: TOML text if it has a `=`, else a path relative to the parent's manifest.
/// Every file it names must be inside the parent's children root (the supervisor handler's
/// `root`), so a guest cannot read files elsewhere through a child's manifest or init state.
fn child_manifest(parent: &Manifest, manifest: &str) -> Result<Manifest, String> {
    let base_dir = parent.origin.base_dir().to_owned();
    let root = &parent.children_root;
    let parsed = if manifest.contains('=') {
        Manifest::parse(manifest, ManifestOrigin::Inline { base_dir })
    } else {
        let path = base_dir.join(manifest.trim());
        inside(root, &path)?;
        Manifest::from_file(&path)
    }
    .map_err(|e| e.to_string())?;
    if let crate::manifest::ComponentSource::Path(component) = &parsed.component {
        inside(root, component)?;
    }
    if let Some(state) = &parsed.init_state {
        inside(root, state)?;
    }
    Ok(parsed)
}

/// Refuses `path` unless it exists inside `root` (symbolic links resolved).
fn inside(root: &std::path::Path, path: &std::path::Path) -> Result<(), String> {
    let outside = || {
        format!(
            "{} is outside this supervisor's root {} (set `root` in its [[handler]] type = \"supervisor\" table to allow more)",
            path.display(),
            root.display()
        )
    };
    let root = root
        .canonicalize()
        .map_err(|e| format!("supervisor root {}: {e}", root.display()))?;
    let resolved = path
        .canonicalize()
        .map_err(|e| format!("{}: cannot read it: {e}", path.display()))?;
    if resolved.starts_with(&root) {
        Ok(())
    } else {
        Err(outside())
    }
}

/// `id` as one of `parent`'s children.
async fn child(shared: &Shared, parent: &Cell, id: &str) -> Result<Arc<Cell>, String> {
    let is_child = match &parent.supervision {
        Some(s) => s.lock().await.children().any(|c| **c == *id),
        None => false,
    };
    match shared.cell(id) {
        Some(cell) if is_child => Ok(cell),
        _ => Err(format!(
            "{id} is not a running child of this actor (see list-children)"
        )),
    }
}

fn start_child(
    store: StoreContextMut<'_, ActorCtx>,
    manifest: String,
    start: Start,
) -> HostFuture<'_, Answer<String>> {
    Box::pin(async move {
        let (shared, parent) = me(store.data())?;
        let manifest = match child_manifest(&store.data().manifest, &manifest) {
            Ok(m) => m,
            Err(e) => return Ok((Err(e),)),
        };
        let result = lifecycle::spawn_child(&shared, &parent, manifest, start).await;
        Ok((result.map(|id| id.to_string()),))
    })
}

fn spawn(
    store: StoreContextMut<'_, ActorCtx>,
    (manifest, init): (String, Option<Vec<u8>>),
) -> HostFuture<'_, Answer<String>> {
    start_child(store, manifest, Start::Init(init))
}

fn resume(
    store: StoreContextMut<'_, ActorCtx>,
    (manifest, state): (String, Option<Vec<u8>>),
) -> HostFuture<'_, Answer<String>> {
    start_child(store, manifest, Start::Resume(state))
}

fn list_children(store: StoreContextMut<'_, ActorCtx>, (): ()) -> HostFuture<'_, (Vec<String>,)> {
    Box::pin(async move {
        let (_, parent) = me(store.data())?;
        let ids = match &parent.supervision {
            Some(s) => s.lock().await.children().map(|c| c.to_string()).collect(),
            None => Vec::new(),
        };
        Ok((ids,))
    })
}

fn stop_child(
    store: StoreContextMut<'_, ActorCtx>,
    (id,): (String,),
) -> HostFuture<'_, Answer<()>> {
    Box::pin(async move {
        let (shared, parent) = me(store.data())?;
        let child = match child(&shared, &parent, &id).await {
            Ok(c) => c,
            Err(e) => return Ok((Err(e),)),
        };
        if let Some(s) = &parent.supervision {
            s.lock().await.remove(&child.id);
        }
        let request = StopRequest {
            cause: StopCause::Parent { keep: false },
            message: None,
        };
        lifecycle::stop(&shared, &child, request).await;
        Ok((Ok(()),))
    })
}

fn restart_child(
    store: StoreContextMut<'_, ActorCtx>,
    (id,): (String,),
) -> HostFuture<'_, Answer<()>> {
    Box::pin(async move {
        let (shared, parent) = me(store.data())?;
        let child = match child(&shared, &parent, &id).await {
            Ok(c) => c,
            Err(e) => return Ok((Err(e),)),
        };
        let Some(supervision) = &parent.supervision else {
            unreachable!("only a supervisor has children");
        };
        // Held so that a crash of the same child waits for this restart.
        let guard = supervision.lock().await;
        let request = StopRequest {
            cause: StopCause::Parent { keep: true },
            message: None,
        };
        lifecycle::stop(&shared, &child, request).await;
        let result = lifecycle::restart(&shared, &child, guard.spec.restart_from).await;
        drop(guard);
        Ok((result,))
    })
}

fn get_child_state(
    store: StoreContextMut<'_, ActorCtx>,
    (id,): (String,),
) -> HostFuture<'_, Answer<Option<Vec<u8>>>> {
    Box::pin(async move {
        let (shared, parent) = me(store.data())?;
        let child = match child(&shared, &parent, &id).await {
            Ok(c) => c,
            Err(e) => return Ok((Err(e),)),
        };
        // Waiting for the child's call to end is waiting on the child.
        let _waiting = match shared.waits.wait(&parent.id, &child.id) {
            Ok(w) => w,
            Err(cycle) => return Ok((Err(shared.describe_cycle("get-child-state", &cycle)),)),
        };
        let timeout = Duration::from_millis(store.data().manifest.messaging.request_timeout_ms);
        Ok((shared.state_of(&child, timeout).await,))
    })
}

fn get_child_events(
    mut store: StoreContextMut<'_, ActorCtx>,
    (id,): (String,),
) -> HostFuture<'_, Answer<Vec<ChainEvent>>> {
    Box::pin(async move {
        let (shared, parent) = me(store.data())?;
        let child = match child(&shared, &parent, &id).await {
            Ok(c) => c,
            Err(e) => return Ok((Err(e),)),
        };
        let events = match child.chain.read_all().await {
            Ok(events) => events,
            Err(e) => return Ok((Err(crate::component::one_line(&e)),)),
        };
        let head = events.last().map(|(s, _)| s.hash).unwrap_or_default();
        // The result is the child's chain itself: record a reference, not a copy.
        store.data_mut().note.result = Some(HostResult::ActorChainRef {
            actor_id: child.id.to_string(),
            len: events.len() as u64,
            head,
        });
        Ok(child_events_result(events))
    })
}

/// The guest's view of a child's chain.
fn child_events_result(
    events: Vec<(theater_chain::StoredEvent, theater_chain::Event)>,
) -> Answer<Vec<ChainEvent>> {
    let mut parent_hash = None;
    let events = events
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
        .collect();
    (Ok(events),)
}
