//! Loading components: read once, compile once per content hash (in memory and on disk), link
//! once per (component, granted handlers). Linking is deny-by-default.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use theater_chain::Hash;
use theater_files::{FileError, FileStamp, Root};
use wasmtime::Engine;
use wasmtime::component::{Component, ComponentExportIndex, InstancePre, Linker};

use crate::actor::ActorCtx;
use crate::error::SpawnError;
use crate::error::one_line;
use crate::host::{HostLinker, Registry, TYPE_ONLY_INTERFACES};
use crate::manifest::{ComponentSource, MAX_COMPONENT_BYTES, Manifest};
use crate::memo::ByIdentity;
use crate::sync::LockExt;

/// The interface every actor exports and the function the runtime calls first.
pub const ACTOR_INTERFACE: &str = "theater:simple/actor";
pub const INIT: &str = "init";

/// A compiled component and what the runtime knows about it.
pub(crate) struct LoadedComponent {
    pub(crate) hash: Hash,
    pub(crate) component: Component,
    /// Where it came from, for messages.
    pub(crate) origin: String,
    bytes: Arc<[u8]>,
    /// Whether this process has put its bytes in the content store already.
    stored: AtomicBool,
}

impl LoadedComponent {
    /// The bytes, the first time they are asked for (to put them in the content store).
    pub(crate) fn bytes_to_store(&self) -> Option<Arc<[u8]>> {
        (!self.stored.swap(true, Ordering::AcqRel)).then(|| self.bytes.clone())
    }
}

/// The actor model's exports, which the runtime itself calls. All but `init` are optional.
/// A handler family's exports (an HTTP request's, a process's output) are its own: see
/// [`ExportDecl`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Export {
    Init,
    HandleSend,
    HandleRequest,
    HandleChannelOpen,
    HandleChannelMessage,
    HandleChannelClose,
    HandleChildError,
    HandleChildExit,
    HandleChildExternalStop,
}

const MESSAGE_SERVER_CLIENT: &str = "theater:simple/message-server-client";
const SUPERVISOR_HANDLERS: &str = "theater:simple/supervisor-handlers";

impl Export {
    pub(crate) const COUNT: usize = 9;

    /// The export a chain names as `interface.function`.
    pub(crate) fn from_path(path: &str) -> Option<Export> {
        Export::ALL.into_iter().find(|e| e.path() == path)
    }

    const ALL: [Export; Export::COUNT] = [
        Export::Init,
        Export::HandleSend,
        Export::HandleRequest,
        Export::HandleChannelOpen,
        Export::HandleChannelMessage,
        Export::HandleChannelClose,
        Export::HandleChildError,
        Export::HandleChildExit,
        Export::HandleChildExternalStop,
    ];

    pub(crate) fn interface(self) -> &'static str {
        match self {
            Export::Init => ACTOR_INTERFACE,
            Export::HandleSend
            | Export::HandleRequest
            | Export::HandleChannelOpen
            | Export::HandleChannelMessage
            | Export::HandleChannelClose => MESSAGE_SERVER_CLIENT,
            Export::HandleChildError
            | Export::HandleChildExit
            | Export::HandleChildExternalStop => SUPERVISOR_HANDLERS,
        }
    }

    pub(crate) fn function(self) -> &'static str {
        match self {
            Export::Init => INIT,
            Export::HandleSend => "handle-send",
            Export::HandleRequest => "handle-request",
            Export::HandleChannelOpen => "handle-channel-open",
            Export::HandleChannelMessage => "handle-channel-message",
            Export::HandleChannelClose => "handle-channel-close",
            Export::HandleChildError => "handle-child-error",
            Export::HandleChildExit => "handle-child-exit",
            Export::HandleChildExternalStop => "handle-child-external-stop",
        }
    }

    /// `interface.function`, as the chain records it.
    pub(crate) fn path(self) -> &'static str {
        match self {
            Export::Init => "theater:simple/actor.init",
            Export::HandleSend => "theater:simple/message-server-client.handle-send",
            Export::HandleRequest => "theater:simple/message-server-client.handle-request",
            Export::HandleChannelOpen => "theater:simple/message-server-client.handle-channel-open",
            Export::HandleChannelMessage => {
                "theater:simple/message-server-client.handle-channel-message"
            }
            Export::HandleChannelClose => {
                "theater:simple/message-server-client.handle-channel-close"
            }
            Export::HandleChildError => "theater:simple/supervisor-handlers.handle-child-error",
            Export::HandleChildExit => "theater:simple/supervisor-handlers.handle-child-exit",
            Export::HandleChildExternalStop => {
                "theater:simple/supervisor-handlers.handle-child-external-stop"
            }
        }
    }
}

/// A guest export a handler family calls, with its types erased: what
/// [`crate::host::Handler::exports`] lists, what a mailbox message of the family names, and
/// what a replay finds by the path a chain records. Made by [`HandlerExport::new`].
pub struct ExportDecl {
    interface: &'static str,
    function: &'static str,
    path: &'static str,
    /// Calls the export in a replay, with params decoded from a recorded `call-start`.
    pub(crate) drive: Drive,
}

/// How a replay calls a handler's export: the params as the chain recorded them; whether the
/// instance trapped, or why the params do not decode.
pub(crate) type Drive = for<'a> fn(
    &'static ExportDecl,
    &'a mut crate::actor::Actor,
    &'a [u8],
    crate::actor::Delivery<'a>,
    &'a tokio::sync::Notify,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<bool, String>> + Send + 'a>,
>;

impl ExportDecl {
    /// The exported interface, `theater:simple/process-handlers` say.
    pub fn interface(&self) -> &'static str {
        self.interface
    }
    /// The function, `handle-stdout` say.
    pub fn function(&self) -> &'static str {
        self.function
    }
    /// `interface.function`, as `call-start` and `call-end` events record it.
    pub fn path(&self) -> &'static str {
        self.path
    }
}

impl std::fmt::Debug for ExportDecl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.path)
    }
}

/// A guest export a handler family calls, with its types: `P` the params after the state,
/// `O` the results (the new state, then the rest; see [`crate::host::Returns`]). Declare it
/// as a `static`, list it in [`crate::host::Handler::exports`], and make calls of it with
/// [`HandlerExport::call`] or [`HandlerExport::notice`]:
///
/// ```ignore
/// static HANDLE_STDOUT: HandlerExport<(u64, Vec<u8>), (State,)> = HandlerExport::new(
///     "theater:simple/process-handlers",
///     "handle-stdout",
///     "theater:simple/process-handlers.handle-stdout",
/// );
/// ```
pub struct HandlerExport<P, O> {
    decl: ExportDecl,
    _types: std::marker::PhantomData<fn(P) -> O>,
}

impl<P, O> HandlerExport<P, O>
where
    P: wasmtime::component::ComponentNamedList
        + wasmtime::component::Lower
        + crate::recordable::Recordable,
    O: crate::actor::Returns,
{
    /// `path` must be `interface.function` (checked when the static is made: a mismatch does
    /// not compile).
    pub const fn new(
        interface: &'static str,
        function: &'static str,
        path: &'static str,
    ) -> HandlerExport<P, O> {
        assert!(
            is_path_of(path.as_bytes(), interface.as_bytes(), function.as_bytes()),
            "an export's path is its interface, a dot and its function"
        );
        HandlerExport {
            decl: ExportDecl {
                interface,
                function,
                path,
                drive: crate::actor::drive::<P, O>,
            },
            _types: std::marker::PhantomData,
        }
    }
}

impl<P, O> HandlerExport<P, O> {
    /// The declaration, types erased.
    pub const fn decl(&'static self) -> &'static ExportDecl {
        &self.decl
    }
}

const fn is_path_of(path: &[u8], interface: &[u8], function: &[u8]) -> bool {
    if path.len() != interface.len() + 1 + function.len() {
        return false;
    }
    let mut i = 0;
    while i < path.len() {
        let want = if i < interface.len() {
            interface[i]
        } else if i == interface.len() {
            b'.'
        } else {
            function[i - interface.len() - 1]
        };
        if path[i] != want {
            return false;
        }
        i += 1;
    }
    true
}

/// Which export a call is of: one of the actor model's, or one a handler declared.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Callee {
    Core(Export),
    Handler(&'static ExportDecl),
}

impl Callee {
    pub(crate) fn function(self) -> &'static str {
        match self {
            Callee::Core(export) => export.function(),
            Callee::Handler(decl) => decl.function,
        }
    }

    pub(crate) fn path(self) -> &'static str {
        match self {
            Callee::Core(export) => export.path(),
            Callee::Handler(decl) => decl.path,
        }
    }
}

impl From<Export> for Callee {
    fn from(export: Export) -> Callee {
        Callee::Core(export)
    }
}

impl From<&'static ExportDecl> for Callee {
    fn from(decl: &'static ExportDecl) -> Callee {
        Callee::Handler(decl)
    }
}

/// A component linked for one set of granted handlers, ready to instantiate.
pub(crate) struct Prepared {
    pub(crate) loaded: Arc<LoadedComponent>,
    pub(crate) pre: InstancePre<ActorCtx>,
    /// Where each [`Export`] is, if the component has it (`init` always is).
    pub(crate) exports: [Option<ComponentExportIndex>; Export::COUNT],
    /// The exports its granted handlers declare, and where each is if the component has it.
    pub(crate) handler_exports: Box<[(&'static ExportDecl, Option<ComponentExportIndex>)]>,
}

impl Prepared {
    /// Where `callee` is, if the component has it.
    pub(crate) fn export_index(&self, callee: Callee) -> Option<ComponentExportIndex> {
        match callee {
            Callee::Core(export) => self.exports[export as usize],
            Callee::Handler(decl) => self
                .handler_exports
                .iter()
                .find(|(d, _)| std::ptr::eq(*d, decl))
                .and_then(|(_, index)| *index),
        }
    }

    /// The handler export a chain names as `path`, among those of the granted handlers.
    pub(crate) fn handler_export(&self, path: &str) -> Option<&'static ExportDecl> {
        self.handler_exports
            .iter()
            .find(|(d, _)| d.path == path)
            .map(|(d, _)| *d)
    }
}

/// A component linked for a sorted set of granted handler families, by the families' addresses:
/// a key is only ever made of the runtime's own families (see `ComponentCache::registered`),
/// which live as long as it does.
type LinkKey = (Hash, Vec<usize>);

pub(crate) struct ComponentCache {
    engine: Engine,
    /// Compiled artifacts are kept here, keyed by component hash.
    disk_cache: Option<PathBuf>,
    /// The handler types, to name the one that grants an import the manifest lacks.
    handlers: Registry,
    by_file: Mutex<HashMap<FileStamp, Arc<LoadedComponent>>>,
    by_hash: Mutex<HashMap<Hash, Arc<LoadedComponent>>>,
    linked: Mutex<HashMap<LinkKey, Arc<Prepared>>>,
    /// Each child manifest's component, prepared: the children a supervisor spawns from one
    /// inline manifest share one `Arc<Manifest>` (see the supervisor handler), so their
    /// component file is opened and looked up once, not once per spawn.
    by_manifest: ByIdentity<Manifest, Option<Arc<Prepared>>>,
}

impl ComponentCache {
    pub(crate) fn new(engine: Engine, disk_cache: Option<PathBuf>, handlers: Registry) -> Self {
        ComponentCache {
            engine,
            disk_cache,
            handlers,
            by_file: Mutex::default(),
            by_hash: Mutex::default(),
            linked: Mutex::default(),
            by_manifest: ByIdentity::default(),
        }
    }

    /// The manifest's component, linked for exactly the handlers it grants. A component file
    /// is opened once: beneath `root` for a child (whose parent named it), as named for the
    /// operator's root actor.
    pub(crate) async fn prepare(
        &self,
        manifest: &Manifest,
        content: Option<&theater_store::ContentStore>,
        root: Option<&Root>,
    ) -> Result<Arc<Prepared>, SpawnError> {
        let loaded = self.load(manifest, content, root).await?;
        self.link_cached(manifest, loaded)
    }

    /// [`ComponentCache::prepare`] once per child manifest (by identity): the file was opened
    /// beneath `root` the first time, and the component compiled and linked from it is kept.
    pub(crate) async fn prepare_child(
        &self,
        manifest: &Arc<Manifest>,
        content: Option<&theater_store::ContentStore>,
        root: &Root,
    ) -> Result<Arc<Prepared>, SpawnError> {
        if let Some(prepared) = self.by_manifest.with(manifest, |p| p.clone()) {
            return Ok(prepared);
        }
        let prepared = self.prepare(manifest, content, Some(root)).await?;
        self.by_manifest
            .with(manifest, |p| *p = Some(prepared.clone()));
        Ok(prepared)
    }

    /// `bytes` as the manifest's component (replay of a chain against given bytes).
    pub(crate) async fn prepare_bytes(
        &self,
        manifest: &Manifest,
        bytes: Vec<u8>,
        origin: String,
    ) -> Result<Arc<Prepared>, SpawnError> {
        let loaded = self.compile(bytes.into(), origin).await?;
        self.link_cached(manifest, loaded)
    }

    fn link_cached(
        &self,
        manifest: &Manifest,
        loaded: Arc<LoadedComponent>,
    ) -> Result<Arc<Prepared>, SpawnError> {
        // Keyed by the families themselves: a manifest naming another family than the
        // runtime's (same name, another registry) misses, and `link` refuses it.
        let mut families: Vec<usize> = manifest
            .handlers
            .iter()
            .map(|g| Arc::as_ptr(&g.family) as *const () as usize)
            .collect();
        families.sort_unstable();
        let key = (loaded.hash, families);
        if let Some(p) = self.linked.locked().get(&key) {
            return Ok(p.clone());
        }
        let prepared = Arc::new(self.link(manifest, loaded)?);
        self.linked.locked().insert(key, prepared.clone());
        Ok(prepared)
    }

    async fn load(
        &self,
        manifest: &Manifest,
        content: Option<&theater_store::ContentStore>,
        root: Option<&Root>,
    ) -> Result<Arc<LoadedComponent>, SpawnError> {
        match &manifest.component {
            ComponentSource::Path(path) => {
                let opened = match root {
                    Some(root) => root.open_file(path, "component"),
                    None => theater_files::open_file(path, "component"),
                }
                .map_err(|e| component_error(path, e))?;
                // The identity of the file actually opened: the same file unchanged since it
                // was compiled needs no reading.
                let stamp = opened.stamp();
                if let Some(l) = self.by_file.locked().get(&stamp) {
                    return Ok(l.clone());
                }
                // Off the async workers: reading megabytes must not stall other actors.
                let bytes = tokio::task::spawn_blocking(move || {
                    opened.read(MAX_COMPONENT_BYTES, "component")
                })
                .await
                .map_err(|e| SpawnError::Component {
                    origin: path.display().to_string(),
                    message: e.to_string(),
                })?
                .map_err(|e| component_error(path, e))?;
                let loaded = self
                    .compile(bytes.into(), path.display().to_string())
                    .await?;
                self.by_file.locked().insert(stamp, loaded.clone());
                Ok(loaded)
            }
            ComponentSource::Store(hash) => {
                let origin = format!("store:{}", hex::encode(hash));
                if let Some(l) = self.by_hash.locked().get(&Hash(*hash)) {
                    return Ok(l.clone());
                }
                let store = content.ok_or_else(|| SpawnError::Component {
                    origin: origin.clone(),
                    message: "a store component needs a data dir".into(),
                })?;
                let bytes = store
                    .get(hash)
                    .map_err(|e| SpawnError::Component {
                        origin: origin.clone(),
                        message: e.to_string(),
                    })?
                    .ok_or_else(|| SpawnError::Component {
                        origin: origin.clone(),
                        message: "no such component in the content store".into(),
                    })?;
                self.compile(bytes.into(), origin).await
            }
        }
    }

    /// Compiles `bytes` unless a component with the same hash is already compiled.
    async fn compile(
        &self,
        bytes: Arc<[u8]>,
        origin: String,
    ) -> Result<Arc<LoadedComponent>, SpawnError> {
        check_is_component(&bytes).map_err(|message| SpawnError::Component {
            origin: origin.clone(),
            message,
        })?;
        let hash = Hash::of(&bytes);
        if let Some(l) = self.by_hash.locked().get(&hash) {
            return Ok(l.clone());
        }
        let engine = self.engine.clone();
        let disk_cache = self.disk_cache.clone();
        let source = bytes.clone();
        // Compiling takes milliseconds to seconds: keep it off the async workers.
        let component = tokio::task::spawn_blocking(move || {
            compile_cached(&engine, &source, &hash, disk_cache.as_deref())
        })
        .await
        .map_err(|e| SpawnError::Component {
            origin: origin.clone(),
            message: e.to_string(),
        })?
        .map_err(|e| SpawnError::Component {
            origin: origin.clone(),
            message: format!("not a valid component: {}", one_line(&e)),
        })?;
        let loaded = Arc::new(LoadedComponent {
            hash,
            component,
            origin,
            bytes,
            stored: AtomicBool::new(false),
        });
        self.by_hash.locked().entry(hash).or_insert(loaded.clone());
        Ok(loaded)
    }

    /// Refuses a grant of a family this runtime was not given. The runtime links only its
    /// own families: a manifest parsed with another registry may name one it lacks, or another
    /// family of the same name, whose settings its host functions would not understand.
    fn registered(&self, manifest: &Manifest) -> Result<(), SpawnError> {
        for grant in &manifest.handlers {
            let unregistered = |why| SpawnError::Unregistered {
                actor: manifest.name.clone(),
                handler: grant.name(),
                why,
            };
            let family = self.handlers.family(grant.name()).ok_or_else(|| {
                unregistered(
                    "is not registered with this runtime: add it to `RuntimeConfig::handlers`",
                )
            })?;
            if !std::ptr::addr_eq(Arc::as_ptr(family), Arc::as_ptr(&grant.family)) {
                return Err(unregistered(
                    "is another family than the one of that name registered with this runtime: parse the manifest with the runtime's registry",
                ));
            }
        }
        Ok(())
    }

    fn link(
        &self,
        manifest: &Manifest,
        loaded: Arc<LoadedComponent>,
    ) -> Result<Prepared, SpawnError> {
        self.registered(manifest)?;
        let component = &loaded.component;
        let granted: Vec<&str> = manifest
            .handlers
            .iter()
            .flat_map(|g| g.family.interfaces().iter().copied())
            .collect();
        // Name the first ungranted import ourselves: wasmtime's message would not say which
        // manifest line grants it.
        for (import, _) in component.component_type().imports(&self.engine) {
            if TYPE_ONLY_INTERFACES.contains(&import) || granted.contains(&import) {
                continue;
            }
            return Err(match self.handlers.granting(import) {
                Some(handler) => SpawnError::Ungranted {
                    actor: manifest.name.clone(),
                    interface: import.to_owned(),
                    handler: handler.name(),
                    manifest: manifest.origin.describe(),
                },
                None => SpawnError::UnknownImport {
                    actor: manifest.name.clone(),
                    interface: import.to_owned(),
                },
            });
        }
        let find = |interface: &str, function: &str| {
            component
                .get_export_index(None, interface)
                .and_then(|i| component.get_export_index(Some(&i), function))
        };
        let exports = Export::ALL.map(|export| find(export.interface(), export.function()));
        if exports[Export::Init as usize].is_none() {
            return Err(SpawnError::NotAnActor {
                origin: loaded.origin.clone(),
            });
        }

        let mut linker = Linker::new(&self.engine);
        for interface in TYPE_ONLY_INTERFACES {
            linker
                .instance(interface)
                .map_err(|e| internal(manifest, e))?;
        }
        let mut host = HostLinker {
            linker: &mut linker,
            registered: Vec::new(),
        };
        let mut handler_exports = Vec::new();
        for grant in &manifest.handlers {
            if !grant.family.implemented() {
                return Err(SpawnError::NotImplemented {
                    actor: manifest.name.clone(),
                    handler: grant.name(),
                });
            }
            let family = self
                .handlers
                .family(grant.name())
                .expect("checked by `registered`");
            family.link(&mut host).map_err(|e| internal(manifest, e))?;
            handler_exports.extend(
                family
                    .exports()
                    .iter()
                    .map(|&decl| (decl, find(decl.interface, decl.function))),
            );
        }
        let pre = linker
            .instantiate_pre(component)
            .map_err(|e| SpawnError::Component {
                origin: loaded.origin.clone(),
                message: one_line(&e),
            })?;
        Ok(Prepared {
            loaded,
            pre,
            exports,
            handler_exports: handler_exports.into(),
        })
    }
}

fn component_error(path: &Path, e: FileError) -> SpawnError {
    SpawnError::Component {
        origin: path.display().to_string(),
        message: match e {
            FileError::NotFound { .. } => {
                "no such file (build the actor with `theater build`, or fix `component` in the manifest)".into()
            }
            other => other.to_string(),
        },
    }
}

fn internal(manifest: &Manifest, e: wasmtime::Error) -> SpawnError {
    SpawnError::Runtime {
        actor: manifest.name.clone(),
        message: one_line(&e),
    }
}

/// Rejects non-wasm files and core modules with a message that says what to do.
fn check_is_component(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err("not a WebAssembly file (it does not start with \\0asm)".into());
    }
    // Bytes 4..8: version (u16) and layer (u16); layer 0 is a core module, 1 a component.
    let layer = u16::from_le_bytes([bytes[6], bytes[7]]);
    if layer == 0 {
        return Err("a core WebAssembly module, not a component: build the actor with `theater build` (or `wasm-tools component new`)".into());
    }
    Ok(())
}

/// A cached artifact's body, if the file is there and whole: its last 32 bytes are the BLAKE3
/// of the rest. A torn, truncated or altered file reads as absent, and is compiled again.
fn read_checked(path: &Path) -> Option<Vec<u8>> {
    let mut bytes = std::fs::read(path).ok()?;
    let body_len = bytes.len().checked_sub(32)?;
    if blake3::hash(&bytes[..body_len]).as_bytes() != &bytes[body_len..] {
        tracing::debug!("{}: checksum mismatch, compiling again", path.display());
        return None;
    }
    bytes.truncate(body_len);
    Some(bytes)
}

/// Loads the compiled artifact from the disk cache, or compiles and stores it.
fn compile_cached(
    engine: &Engine,
    bytes: &[u8],
    hash: &Hash,
    disk_cache: Option<&Path>,
) -> wasmtime::Result<Component> {
    let Some(dir) = disk_cache else {
        return Component::new(engine, bytes);
    };
    let path = dir.join(format!("{}.cwasm", hash.to_hex()));
    if let Some(body) = read_checked(&path) {
        // SAFETY: the bytes are ones this runtime serialized into its own data dir, whole (their
        // BLAKE3 trailer matches); wasmtime checks that a compatible engine produced them.
        match unsafe { Component::deserialize(engine, &body) } {
            Ok(c) => return Ok(c),
            Err(e) => tracing::debug!("recompiling {}: {e}", path.display()),
        }
    }
    let component = Component::new(engine, bytes)?;
    if std::fs::create_dir_all(dir).is_ok()
        && let Ok(mut serialized) = component.serialize()
    {
        let trailer = blake3::hash(&serialized);
        serialized.extend_from_slice(trailer.as_bytes());
        // A name no other writer uses (runtimes in other processes may compile the same
        // component at once), then an atomic rename: a reader sees no file or a whole one.
        let tmp = dir.join(format!(
            "{}.{}.{}.tmp",
            hash.to_hex(),
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        let written = std::fs::write(&tmp, serialized).and_then(|()| std::fs::rename(&tmp, &path));
        if written.is_err() {
            // A full disk, say: leave no partial file behind.
            let _ = std::fs::remove_file(&tmp);
        }
    }
    Ok(component)
}
