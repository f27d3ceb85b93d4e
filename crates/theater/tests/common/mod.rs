//! Shared setup for the integration tests: a runtime on a temp data dir with its log lines and
//! lifecycle events collected, and the puppet actor (actors/puppet), driven by its messages.

#![allow(dead_code)] // Each test file uses a different part.

use std::path::Path;
use std::sync::{Arc, Mutex};

use theater::chain::{ChainReader, Event, EventKind, InstanceReason, Verifier};
use theater::{ActorHandle, LifecycleEvent, Manifest, ManifestOrigin, Runtime, RuntimeConfig};

pub struct Harness {
    pub runtime: Runtime,
    pub logs: Arc<Mutex<Vec<String>>>,
    /// (actor id, event), in the order they happened.
    pub lifecycle: Arc<Mutex<Vec<(String, LifecycleEvent)>>>,
    pub dir: tempfile::TempDir,
}

/// Parses manifest text with every family this project ships (the runtime's and
/// `theater_handlers`'), as `theater run` does.
pub fn parse(text: &str, origin: ManifestOrigin) -> Result<Manifest, theater::ManifestError> {
    Manifest::parse_with(text, origin, &theater_handlers::builtin())
}

/// Reads a manifest file with every family this project ships.
pub fn from_file(path: &Path) -> Result<Manifest, theater::ManifestError> {
    Manifest::from_file_with(path, &theater_handlers::builtin())
}

pub fn harness() -> Harness {
    harness_with(|_| {})
}

pub fn harness_with(adjust: impl FnOnce(&mut RuntimeConfig)) -> Harness {
    harness_at(tempfile::tempdir().unwrap(), adjust)
}

impl Harness {
    /// A harness whose data dir is a new directory inside `parent` (a small filesystem, say).
    pub fn on(parent: &Path) -> Harness {
        std::fs::create_dir_all(parent).unwrap();
        harness_at(tempfile::tempdir_in(parent).unwrap(), |_| {})
    }
}

fn harness_at(dir: tempfile::TempDir, adjust: impl FnOnce(&mut RuntimeConfig)) -> Harness {
    let logs = Arc::new(Mutex::new(Vec::new()));
    let lifecycle = Arc::new(Mutex::new(Vec::new()));
    let (log_sink, life_sink) = (logs.clone(), lifecycle.clone());
    let mut config = RuntimeConfig {
        data_dir: Some(dir.path().to_owned()),
        on_log: Arc::new(move |line| log_sink.lock().unwrap().push(line.message.to_owned())),
        on_lifecycle: Some(Arc::new(move |l: &theater::Lifecycle<'_>| {
            life_sink
                .lock()
                .unwrap()
                .push((l.actor_id.to_owned(), l.event.clone()))
        })),
        handlers: theater_handlers::builtin(),
        ..Default::default()
    };
    config.engine.max_instances = 64;
    adjust(&mut config);
    Harness {
        runtime: Runtime::new(config).unwrap(),
        logs,
        lifecycle,
        dir,
    }
}

/// A puppet manifest with these extra lines, written as a file in `dir` so that children can be
/// spawned by relative path.
pub fn puppet_manifest(dir: &Path, file: &str, extra: &str) -> Manifest {
    let text = format!(
        "name = {:?}\nversion = \"0.1.0\"\ncomponent = {:?}\n[[handler]]\ntype = \"message-server\"\n[[handler]]\ntype = \"supervisor\"\nroot = \"/\"\n{extra}",
        file.trim_end_matches(".toml"),
        test_actors::PUPPET
    );
    let path = dir.join(file);
    std::fs::write(&path, &text).unwrap();
    parse(&text, ManifestOrigin::File(path)).unwrap()
}

pub async fn puppet(h: &Harness, file: &str, extra: &str) -> ActorHandle {
    h.runtime
        .spawn(puppet_manifest(h.dir.path(), file, extra))
        .await
        .unwrap()
}

/// Sends `command` as a request and returns the answer as text (or the error).
pub async fn ask(actor: &ActorHandle, command: &str) -> Result<String, String> {
    actor
        .request(command.as_bytes().to_vec())
        .await
        .map(|a| String::from_utf8(a).unwrap())
}

/// Like [`ask`], for commands that must succeed; returns the text after `ok `.
pub async fn ok(actor: &ActorHandle, command: &str) -> String {
    let answer = ask(actor, command).await.unwrap();
    match answer.strip_prefix("ok") {
        Some(rest) => rest.trim_start().to_owned(),
        None => panic!("{command:?} answered {answer:?}"),
    }
}

pub async fn journal(actor: &ActorHandle) -> String {
    String::from_utf8(actor.state().await.unwrap().unwrap_or_default()).unwrap()
}

/// The persisted chain of `id`, verified, decoded.
/// The bytes the data dir's content store keeps under `hash`.
#[allow(dead_code)] // Not every test binary reads blobs.
pub fn blob(data_dir: &Path, hash: &theater::chain::Hash) -> Vec<u8> {
    theater_store::ContentStore::open(data_dir)
        .unwrap()
        .get(&hash.0)
        .unwrap()
        .expect("the blob is in the content store")
}

pub fn chain_of(data_dir: &Path, id: &str) -> Vec<Event> {
    let reader = ChainReader::open(data_dir).unwrap();
    let (info, events) = reader.chain(id).unwrap();
    let mut verifier = Verifier::new(Some(id));
    let decoded = events.iter().map(|e| verifier.check(e).unwrap()).collect();
    verifier.finish(info.head).unwrap();
    decoded
}

/// How many times the actor's chain says it woke from hibernation (`instance` events with
/// reason `wake`).
pub fn wakes(data_dir: &Path, id: &str) -> usize {
    chain_of(data_dir, id)
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EventKind::Instance {
                    reason: InstanceReason::Wake,
                    ..
                }
            )
        })
        .count()
}

/// The actor's deferred request ids, once it has at least one (a request is on its way).
pub async fn outstanding(actor: &ActorHandle) -> String {
    for _ in 0..5_000 {
        let ids = ask(actor, "outstanding").await.unwrap();
        if !ids.is_empty() {
            return ids;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    panic!("actor {} never deferred a request", actor.id());
}

/// The dice actor (actors/dice) with timing, random, message-server and an environment handler
/// allowing `allow` (a TOML list).
pub fn dice_manifest(allow: &str) -> Manifest {
    let text = format!(
        "name = \"dice\"\nversion = \"0.1.0\"\ncomponent = {:?}\n\
         [[handler]]\ntype = \"message-server\"\n[[handler]]\ntype = \"timing\"\n\
         [[handler]]\ntype = \"random\"\n[[handler]]\ntype = \"environment\"\nallow = {allow}\n",
        test_actors::DICE
    );
    parse(
        &text,
        ManifestOrigin::Inline {
            base_dir: ".".into(),
        },
    )
    .unwrap()
}

/// Replays `id`'s chain from the data dir (its component from the content store) with the
/// families of `registry`; returns the chain's length and the summary.
pub async fn replay_from(
    data_dir: &Path,
    id: &str,
    registry: &theater::Registry,
) -> (usize, theater::replay::ReplaySummary) {
    use theater::replay::{ReplayOptions, ReplaySources, replay_chain};
    let (_, stored) = ChainReader::open(data_dir).unwrap().chain(id).unwrap();
    let len = stored.len();
    let summary = replay_chain(
        id,
        stored,
        ReplaySources::data_dir(data_dir),
        ReplayOptions {
            handlers: registry.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    (len, summary)
}

/// A keeper actor (actors/*-keeper: `component` is one of `test_actors::{STORE,FILE,PROCESS}_KEEPER`)
/// with message-server and these handler tables, written as `keeper.toml` in `dir`.
pub fn keeper_manifest(dir: &Path, component: &str, extra: &str) -> Manifest {
    let text = format!(
        "name = \"keeper\"\nversion = \"0.1.0\"\ncomponent = {:?}\n[[handler]]\ntype = \"message-server\"\n{extra}",
        component
    );
    let path = dir.join("keeper.toml");
    std::fs::write(&path, &text).unwrap();
    parse(&text, ManifestOrigin::File(path)).unwrap()
}

pub async fn keeper(h: &Harness, component: &str, extra: &str) -> ActorHandle {
    h.runtime
        .spawn(keeper_manifest(h.dir.path(), component, extra))
        .await
        .unwrap()
}

/// This process's peak resident memory (`VmHWM`), in KiB.
#[allow(dead_code)] // Not every test binary measures memory.
pub fn peak_rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}
