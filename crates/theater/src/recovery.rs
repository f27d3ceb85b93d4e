//! Bringing actors back after the runtime crashed.
//!
//! An actor was running at the crash if its chain does not end with `shutdown`. For each, parents
//! before children, recovery rebuilds the state by replaying the chain from its newest snapshot
//! (hermetically: nothing outside is touched twice), records `recovery` and a fresh instance,
//! and puts the actor back in its parent's supervision. A call the crash cut off is not
//! finished: it is named in the `recovery` event and its effects are dropped (see
//! `docs/architecture.md`, "Crash recovery"). Messages that were waiting in mailboxes are lost.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use theater_chain::{
    ChainInfo, ChainReader, Event, EventKind, HostCall, HostResult, InstanceReason,
    Recovery as RecoveryEvent, ShutdownReason, StoredEvent,
};

use crate::cell::Start;
use crate::error::RuntimeError;
use crate::lifecycle::{self, Recover, SpawnRequest};
use crate::manifest::{ComponentSource, Manifest, ManifestOrigin};
use crate::recording::{ChainRecorder, ChainSource};
use crate::replay::{ReplayOptions, ReplaySources, replay_to_end};
use crate::runtime::{ActorHandle, Runtime};

/// What [`Runtime::recover`] did.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The recovered actors without a parent, which `theater run --resume` waits for.
    pub roots: Vec<ActorHandle>,
    /// Every recovered actor: (id, name, the call the crash interrupted).
    pub actors: Vec<(String, String, Option<String>)>,
    /// Actors that could not be brought back, and why; their chains end with `shutdown`
    /// (failed or stopped) saying so.
    pub failed: Vec<(String, String, String)>,
}

impl Runtime {
    /// Brings back every actor whose chain in the data dir shows it was running when the
    /// previous runtime on this data dir stopped without shutting it down (a crash).
    pub async fn recover(&self) -> Result<Recovered, RuntimeError> {
        let shared = self.shared().clone();
        let Some(data_dir) = shared.data_dir.clone() else {
            return Ok(Recovered::default());
        };
        // Only when no other runtime holds this data dir: its actors are alive, not crashed.
        if let Some(lock) = &shared.dir_lock {
            match lock.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(RuntimeError::InUse(data_dir.display().to_string()));
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(RuntimeError::Lock {
                        path: data_dir
                            .join(crate::runtime::LOCK_FILE)
                            .display()
                            .to_string(),
                        message: e.to_string(),
                    });
                }
            }
        }
        let result = self.recover_unlocked(&data_dir).await;
        if let Some(lock) = &shared.dir_lock {
            // Back to shared: other runtimes may start again.
            let _ = lock.lock_shared();
        }
        result
    }

    async fn recover_unlocked(
        &self,
        data_dir: &std::path::Path,
    ) -> Result<Recovered, RuntimeError> {
        let reader = ChainReader::open(data_dir)?;
        let mut recovered = Recovered::default();
        let mut alive: HashSet<String> = HashSet::new();
        for info in parents_first(reader.chains()?) {
            let (info, events) = reader.chain(&info.actor_id)?;
            let decoded: Vec<Event> = match events.iter().map(|e| Event::decode(&e.bytes)).collect()
            {
                Ok(d) => d,
                Err(e) => {
                    // Left as it is: `theater verify` names the damage.
                    recovered.failed.push((
                        info.actor_id,
                        info.name,
                        format!("its chain is damaged: {e}"),
                    ));
                    continue;
                }
            };
            if matches!(
                decoded.last().map(|e| &e.kind),
                Some(EventKind::Shutdown { .. }) | None
            ) {
                continue;
            }
            if let Some(parent) = &info.parent
                && !alive.contains(parent)
            {
                let why = "its parent is not running".to_owned();
                self.end_chain(&info, ShutdownReason::Stopped, &why).await;
                recovered.failed.push((info.actor_id, info.name, why));
                continue;
            }
            match self.recover_one(data_dir, &info, events, &decoded).await {
                Ok((handle, interrupted)) => {
                    alive.insert(info.actor_id.clone());
                    recovered
                        .actors
                        .push((info.actor_id.clone(), info.name.clone(), interrupted));
                    if info.parent.is_none() {
                        recovered.roots.push(handle);
                    }
                }
                Err(why) => {
                    self.end_chain(&info, ShutdownReason::Failed, &why).await;
                    recovered.failed.push((info.actor_id, info.name, why));
                }
            }
        }
        Ok(recovered)
    }

    async fn recover_one(
        &self,
        data_dir: &std::path::Path,
        info: &ChainInfo,
        events: Vec<StoredEvent>,
        decoded: &[Event],
    ) -> Result<(ActorHandle, Option<String>), String> {
        let shared = self.shared().clone();
        let EventKind::Spawn(spawn) = &decoded[0].kind else {
            return Err("its chain does not start with spawn".into());
        };
        let base_dir = info
            .manifest_dir
            .as_deref()
            .map_or_else(|| PathBuf::from("."), PathBuf::from);
        let text = crate::replay::manifest_text(&spawn.manifest, |hash| {
            shared.content.as_deref()?.get(&hash.0).ok().flatten()
        })?;
        let mut manifest =
            Manifest::parse_with(&text, ManifestOrigin::Inline { base_dir }, &shared.handlers)
                .map_err(|e| format!("its recorded manifest: {e}"))?;
        // A child is held within its (recovered) parent's grants, as when it was spawned.
        let parent_cell = match info.parent.as_deref() {
            // Its parent may have ended during this recovery (its `init` ran again and shut
            // down): without it there is nothing to hold the child within.
            Some(p) => Some(shared.cell(p).ok_or("its parent is not running")?),
            None => None,
        };
        let mut root = None;
        if let Some(parent) = &parent_cell {
            manifest = crate::attenuation::attenuate(&parent.manifest, manifest, shared.durability)
                .map_err(|refusal| format!("its manifest is refused: {refusal}"))?;
            // Nothing is read beneath it in a recovery (the component and states come from the
            // content store); kept so the child is set up as when it was spawned.
            root = parent
                .manifest
                .settings::<crate::handlers::SupervisorSettings>()
                .and_then(|s| s.root().ok().cloned());
        }
        // The exact code it ran, whatever the files on disk say now.
        manifest.component = ComponentSource::Store(spawn.component.0);

        let interrupted = interrupted_call(decoded);
        // `init` never returned: the actor never started, so it starts over.
        let never_started = !decoded
            .iter()
            .any(|e| matches!(&e.kind, EventKind::CallEnd(c) if c.export.ends_with("/actor.init")));
        let head = theater_chain::ChainHead {
            len: events.len() as u64,
            head: events.last().expect("checked non-empty").hash,
        };
        let (_, state) = replay_to_end(
            &info.actor_id,
            events,
            ReplaySources::data_dir(data_dir),
            ReplayOptions {
                compiled_cache: Some(data_dir.join("compiled")),
                from_snapshot: true,
                // The recorded manifest names this runtime's families, whichever they are.
                handlers: shared.handlers.clone(),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| format!("replaying its chain to rebuild its state: {e}"))?;
        let content = shared.content.as_deref();
        let initial = spawn
            .initial_state
            .map(|h| content.and_then(|c| c.get(&h.0).ok().flatten()).ok_or(h))
            .transpose()
            .map_err(|h| format!("its initial state {h} is not in the content store"))?;
        // A child made by `supervisor.resume` has no `init`: its first call is another export,
        // or, before it had any, its parent's chain shows the resume that returned its id.
        let first_call = decoded.iter().find_map(|e| match &e.kind {
            EventKind::CallStart(c) => Some(&*c.export),
            _ => None,
        });
        let resumed = match first_call {
            Some(export) => !export.ends_with("/actor.init"),
            None => info
                .parent
                .as_deref()
                .is_some_and(|parent| resumed_by(data_dir, parent, &info.actor_id)),
        };
        let start = if resumed {
            Start::Resume(initial.clone())
        } else {
            Start::Init(initial.clone())
        };
        let run_init = never_started && !resumed;
        // The event names the state the chain shows the actor holding; a restarted `init` is
        // given its initial state, as its `call-start` will record.
        let event = RecoveryEvent {
            state: state.as_deref().map(theater_chain::Hash::of),
            interrupted: interrupted.as_ref().map(|(export, _)| export.clone()),
            message_id: interrupted.as_ref().and_then(|(_, id)| id.clone()),
        };
        let parent: Option<Arc<str>> = info.parent.as_deref().map(Into::into);
        let cell = lifecycle::spawn(
            &shared,
            SpawnRequest {
                manifest: Arc::new(manifest),
                parent: parent.clone(),
                start,
                id: Some(info.actor_id.as_str().into()),
                root,
                recover: Some(Recover {
                    head,
                    state: if run_init { initial } else { state },
                    event,
                    run_init,
                    host_calls: standing_host_calls(decoded),
                }),
            },
        )
        .await
        .map_err(|e| e.to_string())?;
        if let Some(parent) = parent.and_then(|p| shared.cell(&p))
            && let Some(supervision) = parent.children_table_or_make()
        {
            let restart = cell
                .manifest
                .restart
                .unwrap_or(parent.manifest.supervision.restart);
            supervision.lock().await.add(cell.id.clone(), restart);
        }
        Ok((
            ActorHandle::new(cell, shared),
            interrupted.map(|(export, _)| export),
        ))
    }

    /// Ends a chain that cannot go on with a `shutdown` event saying why.
    async fn end_chain(&self, info: &ChainInfo, reason: ShutdownReason, why: &str) {
        let shared = self.shared();
        let Some((writer, readers)) = shared.writer.clone().zip(shared.readers.clone()) else {
            return;
        };
        let actor_id: Arc<str> = info.actor_id.as_str().into();
        let source = ChainSource::Persisted {
            appender: Arc::new(writer.appender(actor_id.clone(), None)),
            actor_id,
            writer,
            readers,
        };
        let mut chain = ChainRecorder::new(source, shared.durability);
        chain.continue_from(info.head);
        let data = Some(format!("not recovered: {why}").into_bytes());
        if let Err(e) = chain.record(EventKind::Shutdown { reason, data }).await {
            tracing::warn!("ending the chain of {}: {e}", info.actor_id);
        }
    }
}

/// The host calls whose effects the actor's handler states still hold: those of completed calls
/// since its last fresh start (a restart makes the handlers' states anew); not those of the call
/// the crash cut off, whose state change is dropped.
fn standing_host_calls(events: &[Event]) -> Vec<HostCall> {
    let (mut standing, mut in_call) = (Vec::new(), Vec::new());
    for event in events {
        match &event.kind {
            EventKind::Instance {
                reason: InstanceReason::Spawn | InstanceReason::Restart,
                ..
            } => standing.clear(),
            EventKind::CallStart(_) => in_call.clear(),
            EventKind::HostCall(call) => in_call.push(call.clone()),
            EventKind::CallEnd(_) => standing.append(&mut in_call),
            _ => {}
        }
    }
    standing
}

/// Whether `parent`'s chain records a `supervisor.resume` that returned `child`.
fn resumed_by(data_dir: &std::path::Path, parent: &str, child: &str) -> bool {
    let Ok((_, events)) = ChainReader::open(data_dir).and_then(|r| r.chain(parent)) else {
        return false;
    };
    events.iter().any(|stored| {
        let Ok(event) = Event::decode(&stored.bytes) else {
            return false;
        };
        match event.kind {
            EventKind::HostCall(HostCall {
                function,
                result: HostResult::Value(result),
                ..
            }) if function == "resume" => {
                crate::payload::decode::<(Result<String, String>,)>(&result)
                    .is_ok_and(|(id,)| id.as_deref() == Ok(child))
            }
            _ => false,
        }
    })
}

/// The export call the chain ends inside of, and the message it was delivering.
fn interrupted_call(events: &[Event]) -> Option<(String, Option<String>)> {
    let last_not_host_call = events
        .iter()
        .rev()
        .find(|e| !matches!(e.kind, EventKind::HostCall(_)))?;
    match &last_not_host_call.kind {
        EventKind::CallStart(start) => Some((start.export.to_string(), start.message_id.clone())),
        _ => None,
    }
}

/// Orders chains so that each comes after its recorded parent, and otherwise oldest first.
/// Creation times alone do not do it: a child created in its parent's millisecond may sort
/// first by id, and would then be ended as orphaned. A parent relation that loops (only a
/// damaged database can hold one) puts its chains last, where they find no running parent.
fn parents_first(chains: Vec<ChainInfo>) -> Vec<ChainInfo> {
    let parent_of: HashMap<&str, &str> = chains
        .iter()
        .filter_map(|c| Some((c.actor_id.as_str(), c.parent.as_deref()?)))
        .collect();
    let depth = |id: &str| -> usize {
        let mut current = id;
        let mut depth = 0;
        while let Some(parent) = parent_of.get(current) {
            depth += 1;
            if depth > parent_of.len() {
                return usize::MAX;
            }
            current = parent;
        }
        depth
    };
    let depths: Vec<usize> = chains.iter().map(|c| depth(&c.actor_id)).collect();
    let mut order: Vec<usize> = (0..chains.len()).collect();
    // Stable: equal depths keep the database's order (creation time, then id).
    order.sort_by_key(|&i| depths[i]);
    let mut slots: Vec<Option<ChainInfo>> = chains.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(id: &str, parent: Option<&str>, created_ms: u64) -> ChainInfo {
        ChainInfo {
            actor_id: id.into(),
            name: id.into(),
            parent: parent.map(Into::into),
            created_ms,
            head: Default::default(),
            signature: None,
            manifest_dir: None,
        }
    }

    #[test]
    fn parents_come_before_children_whatever_their_times_and_ids() {
        // As the database lists them: same millisecond, the grandchild's id sorts first.
        let chains = vec![
            chain("a-grandchild", Some("m-child"), 5),
            chain("b-other-root", None, 5),
            chain("m-child", Some("z-root"), 5),
            chain("z-root", None, 5),
            chain("loop-1", Some("loop-2"), 1),
            chain("loop-2", Some("loop-1"), 1),
        ];
        let ids: Vec<String> = parents_first(chains)
            .into_iter()
            .map(|c| c.actor_id)
            .collect();
        assert_eq!(
            ids,
            [
                "b-other-root",
                "z-root",
                "m-child",
                "a-grandchild",
                "loop-1",
                "loop-2"
            ]
        );
    }
}
