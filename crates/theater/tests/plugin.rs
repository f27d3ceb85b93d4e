//! Handler families are plug-ins: a handler defined here, outside the runtime crate, is
//! registered, granted by a manifest, linked into a real component (actors/tally), recorded,
//! attenuated for children and replayed, with no change to the runtime.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{chain_of, harness_with, replay_from};
use theater::ActorExit;
use theater::chain::{EventKind, HostResult};
use theater::plugin::{
    ExitKind, Handler, HostFuture, HostLinker, RecordAs, Refusal, SettingKey, SettingsInput,
};
use theater::wasmtime::{self, StoreContextMut};
use theater::{ActorCtx, Manifest, ManifestOrigin, Registry};

/// Keeps a running total per actor and refuses to go past `max`.
struct TallyHandler {
    /// How many actors' runs ended, as `on_exit` saw them.
    exits: Arc<AtomicUsize>,
}

#[derive(Debug, Clone)]
struct TallySettings {
    max: u64,
    /// The actor keeps the run going while it lives.
    keep_alive: bool,
}

impl Handler for TallyHandler {
    type Settings = TallySettings;
    type State = u64;

    fn name(&self) -> &'static str {
        "tally"
    }
    fn interfaces(&self) -> &'static [&'static str] {
        &["test:plugin/tally"]
    }
    fn keys(&self) -> &'static [SettingKey] {
        &[
            SettingKey {
                key: "max",
                rule: "at most the parent's",
            },
            SettingKey {
                key: "keep_alive",
                rule: "free",
            },
        ]
    }
    fn parse(&self, input: &SettingsInput<'_>) -> Result<TallySettings, String> {
        let max = match input.table.get("max") {
            None => 100,
            Some(v) => v
                .as_integer()
                .and_then(|n| u64::try_from(n).ok())
                .ok_or("`max` must be a non-negative integer")?,
        };
        let keep_alive = input
            .table
            .get("keep_alive")
            .is_some_and(|v| v.as_bool() == Some(true));
        Ok(TallySettings { max, keep_alive })
    }
    fn attenuate(
        &self,
        parent: &TallySettings,
        child: TallySettings,
    ) -> Result<TallySettings, Refusal> {
        if child.max > parent.max {
            return Err(Refusal::handler(
                "tally",
                "max",
                format!("{} is more than the parent's {}", child.max, parent.max),
            ));
        }
        Ok(child)
    }
    fn link(&self, linker: &mut HostLinker<'_>) -> wasmtime::Result<()> {
        linker
            .interface("test:plugin/tally")?
            .func("add", RecordAs::Value, add)
    }
    fn new_state(&self, _: &TallySettings) -> u64 {
        0
    }
    fn keeps_run_alive(&self, settings: &TallySettings) -> bool {
        settings.keep_alive
    }
    fn on_exit(&self, _: &mut u64, how: ExitKind) {
        assert_eq!(how, ExitKind::Failed, "the test's actor ends by trapping");
        self.exits.fetch_add(1, Ordering::SeqCst);
    }
}

fn add(mut store: StoreContextMut<'_, ActorCtx>, (n,): (u64,)) -> HostFuture<'_, (u64,)> {
    Box::pin(async move {
        let ctx = store.data_mut();
        let max = ctx.settings::<TallySettings>().expect("granted").max;
        let input = ctx.outside_input();
        let total = ctx.handler_state::<u64>().expect("granted");
        // A bug in a handler: the panic must fail this call only.
        if n == 13 {
            panic!("unlucky thirteen");
        }
        if *total + n > max {
            wasmtime::bail!("the tally would pass its max of {max}");
        }
        *total += n;
        // Adding nothing asks the host to add one later, from outside the call: input the
        // handler delivers to the actor's mailbox, as a message from no actor.
        if n == 0 {
            tokio::spawn(async move { input.send(b"1".to_vec()).await.unwrap() });
        }
        Ok((*total,))
    })
}

/// Replays actor `id`'s chain from `data_dir` with `registry`'s handlers; returns the chain's
/// length and the replay's summary.
fn tally_manifest(registry: &Registry, extra: &str) -> Result<Manifest, theater::ManifestError> {
    let text = format!(
        "name = \"tally\"\nversion = \"0.1.0\"\ncomponent = {:?}\n{extra}",
        test_actors::TALLY
    );
    Manifest::parse_with(
        &text,
        ManifestOrigin::Inline {
            base_dir: ".".into(),
        },
        registry,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_defined_outside_the_runtime_is_linked_recorded_attenuated_and_replayed() {
    let exits = Arc::new(AtomicUsize::new(0));
    let registry = theater_handlers::builtin()
        .with(TallyHandler {
            exits: exits.clone(),
        })
        .unwrap();
    // Its name and interface are taken now.
    assert!(
        registry
            .clone()
            .with(TallyHandler {
                exits: exits.clone()
            })
            .is_err()
    );
    let h = harness_with(|config| config.handlers = registry.clone());

    // Unknown to the built-in registry; known to this one, with its settings parsed strictly.
    let err = common::parse(
        "name = \"t\"\nversion = \"1\"\ncomponent = \"t.wasm\"\n[[handler]]\ntype = \"tally\"\n",
        ManifestOrigin::Inline {
            base_dir: ".".into(),
        },
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("unknown handler type \"tally\""),
        "{err}"
    );
    let err = tally_manifest(&registry, "[[handler]]\ntype = \"tally\"\nmaxx = 1\n").unwrap_err();
    assert!(err.to_string().contains("did you mean `max`"), "{err}");

    // Deny by default: not granted, not linked, and the error names the handler to add.
    let ungranted = tally_manifest(&registry, "").unwrap();
    let err = h.runtime.spawn(ungranted).await.err().unwrap().to_string();
    assert!(
        err.contains("test:plugin/tally") && err.contains("type = \"tally\""),
        "{err}"
    );

    // Attenuation: a child may not raise `max`, nor get the handler from a parent without it.
    let parent = tally_manifest(
        &registry,
        "[[handler]]\ntype = \"tally\"\nmax = 10\nkeep_alive = true\n",
    )
    .unwrap();
    let greedy = tally_manifest(&registry, "[[handler]]\ntype = \"tally\"\nmax = 11\n").unwrap();
    let refusal = theater::attenuation::attenuate(&parent, greedy, Default::default()).unwrap_err();
    assert_eq!(
        refusal.to_string(),
        "handler \"tally\" `max`: 11 is more than the parent's 10"
    );
    let modest = tally_manifest(&registry, "[[handler]]\ntype = \"tally\"\nmax = 5\n").unwrap();
    assert!(theater::attenuation::attenuate(&parent, modest.clone(), Default::default()).is_ok());
    let without = tally_manifest(&registry, "").unwrap();
    let refusal =
        theater::attenuation::attenuate(&without, modest, Default::default()).unwrap_err();
    assert!(
        refusal.to_string().starts_with("handler \"tally\" `type`"),
        "{refusal}"
    );

    // Granted: the host keeps the total per actor; past `max` the host function fails, and
    // the guest traps on it.
    let actor = h.runtime.spawn(parent).await.unwrap();
    actor.send(b"3".to_vec()).await.unwrap();
    actor.send(b"4".to_vec()).await.unwrap();
    assert_eq!(actor.request(b"".to_vec()).await.unwrap(), b"7");
    // An idle actor whose handler keeps the run alive: the runtime is not quiescent.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), h.runtime.quiescent())
            .await
            .is_err()
    );
    // Outside input reaches the mailbox as a `handle-send` call.
    actor.send(b"0".to_vec()).await.unwrap();
    let mut total = Vec::new();
    for _ in 0..500 {
        total = actor.request(b"".to_vec()).await.unwrap();
        if total == b"8" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(total, b"8");
    actor.send(b"5".to_vec()).await.unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(10), actor.exited())
        .await
        .unwrap();
    let ActorExit::Failed(why) = exit else {
        panic!("{exit:?}")
    };
    assert!(why.contains("the tally would pass its max of 10"), "{why}");
    assert_eq!(exits.load(Ordering::SeqCst), 1);

    // Recorded through the one wrapper: the values, then the host error as its own result.
    h.runtime.flush().await.unwrap();
    let events = chain_of(h.dir.path(), actor.id());
    let results: Vec<&HostResult> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::HostCall(c) if c.interface == "test:plugin/tally" => Some(&c.result),
            _ => None,
        })
        .collect();
    assert_eq!(results.len(), 5, "{results:?}");
    assert!(matches!(results[4], HostResult::Error(m) if m.contains("pass its max")));
    let from_outside = events.iter().any(|e| {
        matches!(&e.kind, EventKind::CallStart(c) if c.sender.is_none() && c.params.ends_with(b"1"))
    });
    assert!(from_outside, "the outside input is recorded as a call");
    h.runtime.quiescent().await;

    // Replayed from the chain alone: the handler does not run, the recorded results (and the
    // recorded error, which traps the guest at the same point) come back.
    let (stored, summary) = replay_from(h.dir.path(), actor.id(), &registry).await;
    assert_eq!(summary.events, stored as u64);
    assert_eq!(
        exits.load(Ordering::SeqCst),
        1,
        "replay ran no handler code"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_handler_fails_that_call_and_the_runtime_keeps_working() {
    let exits = Arc::new(AtomicUsize::new(0));
    let registry = theater_handlers::builtin()
        .with(TallyHandler {
            exits: exits.clone(),
        })
        .unwrap();
    let h = harness_with(|config| config.handlers = registry.clone());
    let manifest = tally_manifest(&registry, "[[handler]]\ntype = \"tally\"\nmax = 100\n").unwrap();
    let unlucky = h.runtime.spawn(manifest.clone()).await.unwrap();
    let bystander = h.runtime.spawn(manifest.clone()).await.unwrap();
    unlucky.send(b"13".to_vec()).await.unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(10), unlucky.exited())
        .await
        .unwrap();
    let ActorExit::Failed(why) = exit else {
        panic!("{exit:?}")
    };
    assert!(
        why.contains("host function `add` panicked: unlucky thirteen"),
        "{why}"
    );
    // The panic is in the chain as that call's error.
    h.runtime.flush().await.unwrap();
    let recorded = chain_of(h.dir.path(), unlucky.id())
        .into_iter()
        .any(|e| matches!(&e.kind, EventKind::HostCall(c) if matches!(&c.result, HostResult::Error(m) if m.contains("unlucky thirteen"))));
    assert!(recorded, "the panic is recorded as the call's error");
    // Everything else goes on: the other actor, and new spawns (no lock left poisoned).
    bystander.send(b"2".to_vec()).await.unwrap();
    assert_eq!(bystander.request(b"".to_vec()).await.unwrap(), b"2");
    let fresh = h.runtime.spawn(manifest).await.unwrap();
    fresh.send(b"1".to_vec()).await.unwrap();
    assert_eq!(fresh.request(b"".to_vec()).await.unwrap(), b"1");
}

/// A runtime links only the handler families it was given: a manifest parsed with a richer
/// registry (another program's, or a hostile one's) does not bring its families along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_cannot_bring_a_handler_the_runtime_was_not_given() {
    let registry = theater_handlers::builtin()
        .with(TallyHandler {
            exits: Arc::new(AtomicUsize::new(0)),
        })
        .unwrap();
    let manifest = tally_manifest(&registry, "[[handler]]\ntype = \"tally\"\nmax = 100\n").unwrap();
    let h = common::harness();
    let err = h.runtime.spawn(manifest.clone()).await.unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("handler type \"tally\" is not registered with this runtime"),
        "{message}"
    );
    assert!(message.contains("RuntimeConfig::handlers"), "{message}");
    assert_eq!(h.runtime.actor_count(), 0);
    // A runtime given the family runs the same manifest.
    let h = harness_with(|config| config.handlers = registry.clone());
    let tally = h.runtime.spawn(manifest).await.unwrap();
    tally.send(b"2".to_vec()).await.unwrap();
    assert_eq!(tally.request(b"".to_vec()).await.unwrap(), b"2");
}

/// Two families of one name: a manifest parsed with one is refused by a runtime given the
/// other, whose host functions would not understand its settings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_parsed_with_another_family_of_the_same_name_is_refused() {
    let tally = || TallyHandler {
        exits: Arc::new(AtomicUsize::new(0)),
    };
    let theirs = theater_handlers::builtin().with(tally()).unwrap();
    let ours = theater_handlers::builtin().with(tally()).unwrap();
    let manifest = tally_manifest(&theirs, "[[handler]]\ntype = \"tally\"\nmax = 100\n").unwrap();
    let h = harness_with(|config| config.handlers = ours.clone());
    // The runtime's own manifest first, so that a link for this component and these grants
    // is cached: the refusal must not depend on the cache.
    let own = tally_manifest(&ours, "[[handler]]\ntype = \"tally\"\nmax = 100\n").unwrap();
    h.runtime.spawn(own).await.unwrap();
    let message = h.runtime.spawn(manifest).await.unwrap_err().to_string();
    assert!(
        message.contains("handler type \"tally\" is another family than the one of that name registered with this runtime"),
        "{message}"
    );
    // Built-in families are shared by every registry made from the built-in one: a manifest
    // read with the built-in registry runs on this runtime.
    let minimal = common::parse(
        &format!(
            "name = \"m\"\nversion = \"1\"\ncomponent = {:?}\n",
            test_actors::MINIMAL
        ),
        ManifestOrigin::Inline {
            base_dir: ".".into(),
        },
    )
    .unwrap();
    h.runtime.spawn(minimal).await.unwrap();
}

/// A hibernated actor keeps its handlers' actor-scoped state, though the rest of its context
/// is dropped while it sleeps and made again at the wake; and its chain still replays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_state_survives_a_dormant_hibernation() {
    let registry = theater_handlers::builtin()
        .with(TallyHandler {
            exits: Arc::new(AtomicUsize::new(0)),
        })
        .unwrap();
    let h = harness_with(|config| {
        config.handlers = registry.clone();
        config.hibernate_after = Some(Duration::from_millis(20));
    });
    let manifest = tally_manifest(&registry, "[[handler]]\ntype = \"tally\"\nmax = 100\n").unwrap();
    let tally = h.runtime.spawn(manifest).await.unwrap();
    tally.send(b"5".to_vec()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    tally.send(b"3".to_vec()).await.unwrap();
    assert_eq!(tally.request(b"".to_vec()).await.unwrap(), b"8");
    h.runtime.flush().await.unwrap();
    let wakes = common::wakes(h.dir.path(), tally.id());
    assert!(wakes >= 1, "the actor never hibernated");
    let (_, summary) = replay_from(h.dir.path(), tally.id(), &registry).await;
    assert!(summary.instances >= 2, "{summary:?}");
}

/// A family that is registered but says it is not implemented yet (a type a newer API names).
struct Unfinished;

impl Handler for Unfinished {
    type Settings = ();
    type State = ();
    fn name(&self) -> &'static str {
        "unfinished"
    }
    fn interfaces(&self) -> &'static [&'static str] {
        &["test:plugin/unfinished"]
    }
    fn parse(&self, _: &SettingsInput<'_>) -> Result<(), String> {
        Ok(())
    }
    fn attenuate(&self, _: &(), (): ()) -> Result<(), Refusal> {
        Ok(())
    }
    fn link(&self, _: &mut HostLinker<'_>) -> wasmtime::Result<()> {
        wasmtime::bail!("not linked")
    }
    fn implemented(&self) -> bool {
        false
    }
    fn new_state(&self, (): &()) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn granted_but_unimplemented_handler_is_a_clear_error() {
    let registry = theater_handlers::builtin().with(Unfinished).unwrap();
    let h = harness_with(|config| config.handlers = registry.clone());
    let text = format!(
        "name = \"x\"\nversion = \"0.1.0\"\ncomponent = {:?}\n[[handler]]\ntype = \"timing\"\n[[handler]]\ntype = \"unfinished\"\n",
        test_actors::UNGRANTED
    );
    let origin = ManifestOrigin::Inline {
        base_dir: ".".into(),
    };
    let manifest = Manifest::parse_with(&text, origin, &registry).unwrap();
    let err = h.runtime.spawn(manifest).await.unwrap_err();
    assert!(
        err.to_string().contains(
            "handler type \"unfinished\" is part of the API but this build does not implement it yet"
        ),
        "{err}"
    );
}
