//! `theater:simple/supervisor`: spawning and managing children. Granted by the `supervisor`
//! handler. Restart decisions are the runtime's (`crate::lifecycle`), from the parent's
//! `[supervision]` settings.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use theater_chain::{Durability, HostResult};
use theater_files::Root;
use wasmtime::StoreContextMut;

use super::root::RootSetting;
use crate::actor::ActorCtx;
use crate::bindings::theater::simple::types::ChainEvent;
use crate::cell::{Cell, Start, StopCause, StopRequest};
use crate::family::{Grant, Refusal, SettingKey, SettingsInput};
use crate::host::{Handler, HostFuture, HostLinker, RecordAs};
use crate::lifecycle;
use crate::manifest::{MAX_MANIFEST_BYTES, Manifest, ManifestOrigin};
use crate::shared::Shared;
use crate::sync::LockExt;

type Answer<T> = (Result<T, String>,);

/// The `supervisor` handler's settings.
#[derive(Debug, Clone)]
pub struct SupervisorSettings {
    /// The directory every file a child manifest names must be beneath.
    pub root: RootSetting,
    /// Inline child manifests already parsed and attenuated, by text (with the runtime's
    /// durability, which attenuation reads): a supervisor spawning many children from one
    /// manifest parses it once, and its children share one manifest.
    children: Arc<Mutex<KeptChildren>>,
}

/// Inline child manifest texts, with the durability they were attenuated under.
type KeptChildren = HashMap<Box<str>, (Durability, Arc<Manifest>)>;

/// Inline child manifests a supervisor keeps parsed; past this many texts it starts over.
const MAX_KEPT_CHILD_MANIFESTS: usize = 64;

impl SupervisorSettings {
    /// The directory every file a child manifest names must be beneath, opened.
    pub fn root(&self) -> Result<&Root, String> {
        self.root.open("supervisor")
    }

    /// The directory `root` names, or the manifest's directory when it names none.
    pub fn grants_directory(&self) -> &std::path::Path {
        self.root.named()
    }
}

pub(crate) struct SupervisorHandler;

impl Handler for SupervisorHandler {
    type Settings = SupervisorSettings;
    type State = ();

    fn name(&self) -> &'static str {
        "supervisor"
    }
    fn interfaces(&self) -> &'static [&'static str] {
        &["theater:simple/supervisor"]
    }
    fn keys(&self) -> &'static [SettingKey] {
        &[SettingKey {
            key: "root",
            rule: "beneath the parent's root, opened beneath it (kernel-confined); unset: the parent's root",
        }]
    }
    fn parse(&self, input: &SettingsInput<'_>) -> Result<SupervisorSettings, String> {
        Ok(SupervisorSettings {
            root: RootSetting::parse(input, None)?,
            children: Arc::default(),
        })
    }
    fn attenuate(
        &self,
        parent: &SupervisorSettings,
        child: SupervisorSettings,
    ) -> Result<SupervisorSettings, Refusal> {
        Ok(SupervisorSettings {
            root: child.root.within(&parent.root, "supervisor")?,
            children: Arc::default(),
        })
    }
    fn link(&self, linker: &mut HostLinker<'_>) -> wasmtime::Result<()> {
        add_to_linker(linker)
    }
    fn grants(&self, settings: &SupervisorSettings) -> Vec<Grant> {
        vec![Grant::Children, Grant::Directory(settings.root.granted())]
    }
    fn new_state(&self, _: &SupervisorSettings) {}
}

fn add_to_linker(linker: &mut HostLinker<'_>) -> wasmtime::Result<()> {
    let mut host = linker.interface("theater:simple/supervisor")?;
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
pub(crate) fn me(ctx: &ActorCtx) -> wasmtime::Result<(Arc<Shared>, Arc<Cell>)> {
    let shared = ctx.shared()?;
    let cell = shared
        .cell(&ctx.id)
        .ok_or_else(|| wasmtime::format_err!("actor {} is not running", ctx.id))?;
    Ok((shared, cell))
}

/// A child manifest: TOML text if it has a `=`, else a path relative to the parent's manifest,
/// read once beneath the parent's root. The result is attenuated: within the parent's grants
/// and limits. Returns it with the root its component and `init_state` are read beneath.
///
/// An inline manifest is parsed and attenuated once per parent manifest and text: the result
/// depends on nothing else, and the same text spawned again gets the same `Arc`, so that the
/// work keyed by a manifest (its component, its link) is done once too.
async fn child_manifest(
    shared: &Shared,
    parent: &Manifest,
    manifest: &str,
) -> Result<(Arc<Manifest>, Root), String> {
    let settings = parent
        .settings::<SupervisorSettings>()
        .ok_or("this actor's manifest does not grant the supervisor handler")?;
    let root = settings.root()?.clone();
    if manifest.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(format!(
            "the child manifest is {} bytes, more than the {MAX_MANIFEST_BYTES}-byte limit",
            manifest.len()
        ));
    }
    let inline = manifest.contains('=');
    if inline
        && let Some((durability, kept)) = settings.children.locked().get(manifest)
        && *durability == shared.durability
    {
        return Ok((kept.clone(), root));
    }
    let base_dir = parent.origin.base_dir().to_owned();
    let registry = &shared.handlers;
    let parsed = if inline {
        Manifest::parse_with(manifest, ManifestOrigin::Inline { base_dir }, registry)
    } else {
        let path = base_dir.join(manifest.trim());
        let (beneath, at) = (root.clone(), path.clone());
        // Off the async workers: a slow disk must not stall other actors.
        let text = tokio::task::spawn_blocking(move || {
            theater_files::read_beneath(&beneath, &at, MAX_MANIFEST_BYTES, "manifest")
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        let text = String::from_utf8(text)
            .map_err(|_| format!("manifest {}: not UTF-8 text", path.display()))?;
        Manifest::parse_with(&text, ManifestOrigin::File(path), registry)
    }
    .map_err(|e| e.to_string())?;
    let child = crate::attenuation::attenuate(parent, parsed, shared.durability)
        .map_err(|refusal| format!("child manifest refused: {refusal}"))?;
    let child = Arc::new(child);
    if inline {
        let mut kept = settings.children.locked();
        if kept.len() >= MAX_KEPT_CHILD_MANIFESTS {
            kept.clear();
        }
        kept.insert(manifest.into(), (shared.durability, child.clone()));
    }
    Ok((child, root))
}

/// `id` as one of `parent`'s children.
async fn child(shared: &Shared, parent: &Cell, id: &str) -> Result<Arc<Cell>, String> {
    let is_child = parent
        .supervision(shared)
        .await?
        .children()
        .any(|c| **c == *id);
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
        let (manifest, root) =
            match child_manifest(&shared, &store.data().manifest, &manifest).await {
                Ok(m) => m,
                Err(e) => return Ok((Err(e),)),
            };
        let result = lifecycle::spawn_child(&shared, &parent, manifest, root, start).await;
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
        let (shared, parent) = me(store.data())?;
        let ids = match parent.supervision(&shared).await {
            Ok(s) => s.children().map(|c| c.to_string()).collect(),
            Err(_) => Vec::new(),
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
        // Killing the parent's call must not cut the stop in half.
        let task = lifecycle::uncancellable(async move {
            parent.supervision(&shared).await?.remove(&child.id);
            let request = StopRequest {
                cause: StopCause::Parent { keep: false },
                message: None,
            };
            lifecycle::stop(&shared, &child, request).await;
            Ok(())
        });
        Ok((task.await,))
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
        // Killing the parent's call must not leave the child half restarted, nor the
        // supervision lock held.
        let task = lifecycle::uncancellable(async move {
            // Waiting for the restart (the child's `init`) is waiting on the child.
            let _waiting = shared
                .waits
                .wait(&parent.id, &child.id)
                .map_err(|c| shared.describe_cycle("restart-child", &c))?;
            // Held so that a crash of the same child waits for this restart.
            let guard = parent.supervision(&shared).await?;
            let request = StopRequest {
                cause: StopCause::Parent { keep: true },
                message: None,
            };
            if !lifecycle::stop(&shared, &child, request).await {
                return Err(format!(
                    "{} did not stop within its shutdown timeout, even killed; it was not restarted",
                    child.label()
                ));
            }
            let from = guard.spec.restart_from;
            let result = lifecycle::restart_holding(&shared, &parent, &child, from).await;
            drop(guard);
            result
        });
        Ok((task.await,))
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
        let messaging = store.data().manifest.messaging;
        let timeout = Duration::from_millis(messaging.request_timeout_ms);
        // A child's state is a message to its parent: held to the parent's limit.
        let max = messaging.max_message_bytes as usize;
        let state = shared.state_of(&child, timeout).await.and_then(|state| {
            match state.as_ref().map(Vec::len) {
                Some(len) if len > max => Err(format!(
                    "the state of {} is {len} bytes, over this actor's limit of {max} bytes ([messaging] max_message_bytes)",
                    child.label()
                )),
                _ => Ok(state),
            }
        });
        Ok((state,))
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
        let events = match child.chain.read_whole().await {
            Ok(events) => events,
            Err(e) => return Ok((Err(crate::error::one_line(&e)),)),
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
    (Ok(super::runtime::chain_events(events, None)),)
}

/// `id` as a running child of the calling actor: `Err` (the outer one) if the caller is not
/// running, the inner `Err` if `id` is not its child.
pub(crate) async fn child_of_caller(
    caller: wasmtime::Result<(Arc<Shared>, Arc<Cell>)>,
    id: &str,
) -> wasmtime::Result<Result<Arc<Cell>, String>> {
    let (shared, parent) = caller?;
    if !parent.supervises {
        return Ok(Err(
            "reading a child's chain needs the supervisor handler".into()
        ));
    }
    Ok(child(&shared, &parent, id).await)
}
