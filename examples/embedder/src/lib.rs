//! A program that embeds Theater: the built-in handler families minus one (`http-client`, which
//! this program does not want its actors to have), plus a family of its own, `metronome`, with
//! an interface of its own and an export of its own. It runs the `metronome` actor
//! (`actors/metronome`) and replays its chain, the ticks the family delivered included.
//!
//! Everything here uses the public API only: `theater::plugin` for the family, `theater` for
//! the runtime and the replay.

use std::path::Path;
use std::time::Duration;

use theater::plugin::wasmtime::StoreContextMut;
use theater::plugin::{
    ActorCtx, ExportDecl, Handler, HandlerExport, HostFuture, HostLinker, RecordAs, Refusal,
    Registry, SettingKey, SettingsInput, State, at_most, positive,
};
use theater::replay::{ReplayOptions, ReplaySources, replay_chain};
use theater::{ActorExit, Manifest, ManifestOrigin, Runtime, RuntimeConfig};

/// The `metronome` family: `start(count, interval-ms)` delivers `count` ticks to the actor,
/// each a call of its `example:metronome/ticks.handle-tick` export.
pub struct MetronomeHandler;

/// `[[handler]] type = "metronome"`: `max_ticks` (default 10) bounds what one `start` asks.
#[derive(Debug, Clone)]
pub struct MetronomeSettings {
    pub max_ticks: u64,
}

/// The export the family calls, declared with its types: a replay decodes the recorded
/// params with them.
static HANDLE_TICK: HandlerExport<(u32,), (State,)> = HandlerExport::new(
    "example:metronome/ticks",
    "handle-tick",
    "example:metronome/ticks.handle-tick",
);

impl Handler for MetronomeHandler {
    type Settings = MetronomeSettings;
    type State = ();

    fn name(&self) -> &'static str {
        "metronome"
    }
    fn interfaces(&self) -> &'static [&'static str] {
        &["example:metronome/metronome"]
    }
    fn keys(&self) -> &'static [SettingKey] {
        &[SettingKey {
            key: "max_ticks",
            rule: "at most the parent's",
        }]
    }
    fn parse(&self, input: &SettingsInput<'_>) -> Result<MetronomeSettings, String> {
        Ok(MetronomeSettings {
            max_ticks: positive(input.table, "max_ticks")?.unwrap_or(10),
        })
    }
    fn attenuate(
        &self,
        parent: &MetronomeSettings,
        child: MetronomeSettings,
    ) -> Result<MetronomeSettings, Refusal> {
        let max_ticks = at_most(
            "metronome",
            "max_ticks",
            Some(child.max_ticks),
            parent.max_ticks,
        )?;
        Ok(MetronomeSettings {
            max_ticks: max_ticks.unwrap_or(parent.max_ticks),
        })
    }
    fn link(&self, linker: &mut HostLinker<'_>) -> theater::plugin::wasmtime::Result<()> {
        linker
            .interface("example:metronome/metronome")?
            .func("start", RecordAs::Value, start)
    }
    fn exports(&self) -> &'static [&'static ExportDecl] {
        static EXPORTS: [&ExportDecl; 1] = [HANDLE_TICK.decl()];
        &EXPORTS
    }
    fn new_state(&self, _: &MetronomeSettings) {}
}

/// `start`: checked against the settings, recorded by the wrapper; the ticks come later,
/// from a task of their own, through the actor's mailbox.
fn start(
    store: StoreContextMut<'_, ActorCtx>,
    (count, interval_ms): (u32, u64),
) -> HostFuture<'_, (Result<(), String>,)> {
    Box::pin(async move {
        let ctx = store.data();
        let max = ctx
            .settings::<MetronomeSettings>()
            .map_or(0, |s| s.max_ticks);
        if u64::from(count) > max {
            return Ok((Err(format!(
                "{count} ticks is more than the metronome's max_ticks of {max}"
            )),));
        }
        let input = ctx.outside_input();
        // The run is not over while ticks are still to come.
        let keep_alive = input.keep_alive();
        tokio::spawn(async move {
            let _keep_alive = keep_alive;
            for n in 1..=count {
                tokio::time::sleep(Duration::from_millis(interval_ms)).await;
                let tick = HANDLE_TICK.notice((n,), 0);
                if input.deliver(tick, Duration::from_secs(5)).await.is_err() {
                    return;
                }
            }
        });
        Ok((Ok(()),))
    })
}

/// The families this program's runtime has.
pub fn registry() -> Result<Registry, String> {
    theater_handlers::builtin()
        .without("http-client")?
        .with(MetronomeHandler)
}

/// What a run showed.
#[derive(Debug)]
pub struct Report {
    pub actor_id: String,
    /// The state the actor shut down with.
    pub final_state: String,
    /// Events in its chain.
    pub events: usize,
    /// The ticks its chain records (calls of the family's export).
    pub ticks: usize,
    /// Export calls the replay drove again, `init` and the ticks.
    pub replayed_calls: u64,
    /// Whether the replay ended in the state the run did (every event before matched, or the
    /// replay would have failed).
    pub replay_matches: bool,
}

/// Runs the metronome actor (`component`) on `data_dir` until it shuts down, then replays its
/// chain from the data dir.
pub async fn run(component: &Path, data_dir: &Path) -> Result<Report, String> {
    let registry = registry()?;
    let text = format!(
        "name = \"metronome\"\nversion = \"0.1.0\"\ncomponent = {:?}\n[[handler]]\ntype = \"metronome\"\nmax_ticks = 5\n",
        component.display().to_string()
    );
    let origin = ManifestOrigin::Inline {
        base_dir: data_dir.to_owned(),
    };
    let manifest = Manifest::parse_with(&text, origin, &registry).map_err(|e| e.to_string())?;
    let runtime = Runtime::new(RuntimeConfig {
        data_dir: Some(data_dir.to_owned()),
        handlers: registry.clone(),
        ..Default::default()
    })
    .map_err(|e| e.to_string())?;
    let actor = runtime.spawn(manifest).await.map_err(|e| e.to_string())?;
    let actor_id = actor.id().to_owned();
    let final_state = match actor.exited().await {
        ActorExit::Shutdown(data) => data.unwrap_or_default(),
        other => return Err(format!("the actor ended otherwise: {other:?}")),
    };
    runtime.shutdown().await.map_err(|e| e.to_string())?;

    let (_, events) = theater::chain::ChainReader::open(data_dir)
        .and_then(|r| r.chain(&actor_id))
        .map_err(|e| e.to_string())?;
    let len = events.len();
    let mut verifier = theater::chain::Verifier::new(Some(&actor_id));
    let mut ticks = 0;
    for stored in &events {
        let event = verifier.check(stored).map_err(|e| e.to_string())?;
        if let theater::chain::EventKind::CallStart(start) = &event.kind
            && start.export == HANDLE_TICK.decl().path()
        {
            ticks += 1;
        }
    }
    let summary = replay_chain(
        &actor_id,
        events,
        ReplaySources::data_dir(data_dir),
        ReplayOptions {
            handlers: registry,
            ..Default::default()
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(Report {
        actor_id,
        replay_matches: summary.final_state == Some(theater::chain::Hash::of(&final_state)),
        final_state: String::from_utf8_lossy(&final_state).into(),
        events: len,
        ticks,
        replayed_calls: summary.calls,
    })
}
