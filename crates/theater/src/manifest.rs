//! Actor manifests (TOML), documented key by key in `docs/manifest.md`.
//!
//! Parsing is strict: a missing field, an unknown key or an unknown handler type is an error that
//! names it, with the line, and suggests the likely intended name.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::handlers::HandlerKind;
use crate::supervision::{RestartFrom, RestartType, Strategy, SupervisorSpec};

/// Memory an actor may use when its manifest sets no `[limits] memory_mb`.
pub const DEFAULT_MEMORY_MB: u32 = 64;
/// Guest CPU time one call may use when the manifest sets no `[limits] max_call_cpu_ms`.
pub const DEFAULT_MAX_CALL_CPU_MS: u64 = 10_000;
/// How long a request waits for its answer when the manifest sets no
/// `[messaging] request_timeout_ms`.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 30_000;
/// Messages an actor's mailbox holds when the manifest sets no `[messaging] mailbox_capacity`.
pub const DEFAULT_MAILBOX_CAPACITY: u32 = 10_000;
/// The largest message an actor accepts when the manifest sets no
/// `[messaging] max_message_bytes`.
pub const DEFAULT_MAX_MESSAGE_BYTES: u32 = 1 << 20;

/// A parsed, validated manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub description: Option<String>,
    /// Where the component comes from.
    pub component: ComponentSource,
    /// The manifest's `init_state` file, resolved against its directory.
    pub init_state: Option<PathBuf>,
    pub save_chain: bool,
    /// Granted handlers, in manifest order. `runtime` is always granted in addition.
    pub handlers: Vec<HandlerKind>,
    pub limits: Limits,
    pub chain: ChainSettings,
    pub messaging: MessagingSettings,
    /// How this actor supervises its children (`[supervision]`).
    pub supervision: SupervisorSpec,
    /// This actor's restart type as a child (`[child] restart`); `None`: its parent's default.
    pub restart: Option<RestartType>,
    /// The directory that every file a child manifest names (the manifest itself, its
    /// component, its `init_state`) must be in: the supervisor handler's `root`, resolved
    /// against this manifest, or this manifest's directory.
    pub children_root: PathBuf,
    /// The environment variables the guest may read (`allow` in the `environment` handler
    /// table): exact names, or prefixes ending in `*`. Empty: none.
    pub environment_allow: Vec<String>,
    /// The manifest's text, recorded in the spawn event.
    pub text: String,
    /// Where it was read from, for error messages and relative paths.
    pub origin: ManifestOrigin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentSource {
    Path(PathBuf),
    /// `store:<blake3-hex>`: a component in the data dir's content store.
    Store([u8; 32]),
}

#[derive(Debug, Clone)]
pub enum ManifestOrigin {
    File(PathBuf),
    Inline { base_dir: PathBuf },
}

impl ManifestOrigin {
    /// The directory relative paths resolve against.
    pub fn base_dir(&self) -> &Path {
        match self {
            // `manifest.toml` has the parent "": that is the current directory.
            ManifestOrigin::File(p) => match p.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir,
                _ => Path::new("."),
            },
            ManifestOrigin::Inline { base_dir } => base_dir,
        }
    }

    /// How errors name the manifest.
    pub fn describe(&self) -> String {
        match self {
            ManifestOrigin::File(p) => p.display().to_string(),
            ManifestOrigin::Inline { .. } => "<inline manifest>".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most linear memory, in MiB, the actor may grow to.
    pub memory_mb: u32,
    /// Guest CPU time one export call may use before it traps (epoch-measured, 10 ms resolution).
    pub max_call_cpu_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_mb: DEFAULT_MEMORY_MB,
            max_call_cpu_ms: DEFAULT_MAX_CALL_CPU_MS,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainSettings {
    /// `None`: the runtime's default (`theater run --durability`).
    pub durability: Option<theater_chain::Durability>,
    /// Record a snapshot after this many calls since the last one; 0: never.
    pub snapshot_every: u64,
}

/// Calls between snapshots when the manifest sets no `[chain] snapshot_every`.
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 1_000;

impl Default for ChainSettings {
    fn default() -> Self {
        ChainSettings {
            durability: None,
            snapshot_every: DEFAULT_SNAPSHOT_EVERY,
        }
    }
}

/// Messaging limits (`[messaging]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessagingSettings {
    /// How long this actor's requests wait for an answer.
    pub request_timeout_ms: u64,
    /// Messages waiting in this actor's mailbox at most; a sender to a full mailbox waits
    /// (up to its request timeout) for room, then gets an error.
    pub mailbox_capacity: u32,
    /// The largest message this actor accepts.
    pub max_message_bytes: u32,
}

impl Default for MessagingSettings {
    fn default() -> Self {
        MessagingSettings {
            request_timeout_ms: DEFAULT_REQUEST_TIMEOUT_MS,
            mailbox_capacity: DEFAULT_MAILBOX_CAPACITY,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        }
    }
}

/// A manifest that could not be used. Displays as one line naming the manifest and the problem.
#[derive(Debug, Clone, thiserror::Error)]
#[error("manifest {origin}{line}: {message}", line = line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ManifestError {
    pub origin: String,
    pub line: Option<usize>,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    name: String,
    version: String,
    component: String,
    description: Option<String>,
    init_state: Option<String>,
    save_chain: Option<bool>,
    #[serde(default)]
    handler: Vec<toml::Table>,
    limits: Option<RawLimits>,
    chain: Option<RawChain>,
    messaging: Option<RawMessaging>,
    supervision: Option<RawSupervision>,
    child: Option<RawChild>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMessaging {
    request_timeout_ms: Option<u64>,
    mailbox_capacity: Option<u32>,
    max_message_bytes: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSupervision {
    strategy: Option<String>,
    max_restarts: Option<u32>,
    period_ms: Option<u64>,
    restart: Option<String>,
    restart_from: Option<String>,
    shutdown_timeout_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChild {
    restart: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    memory_mb: Option<u32>,
    max_call_cpu_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChain {
    durability: Option<String>,
    snapshot_every: Option<u64>,
}

const TOP_LEVEL_KEYS: &[&str] = &[
    "name",
    "version",
    "component",
    "description",
    "init_state",
    "save_chain",
    "handler",
    "limits",
    "chain",
    "messaging",
    "supervision",
    "child",
];

/// Keys of the manifest's tables, for suggestions.
const TABLE_KEYS: &[&str] = &[
    "memory_mb",
    "max_call_cpu_ms",
    "durability",
    "request_timeout_ms",
    "mailbox_capacity",
    "max_message_bytes",
    "strategy",
    "max_restarts",
    "period_ms",
    "restart",
    "restart_from",
    "shutdown_timeout_ms",
];

impl Manifest {
    /// Reads and validates the manifest file at `path`.
    pub fn from_file(path: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|e| ManifestError {
            origin: path.display().to_string(),
            line: None,
            message: format!("cannot read it: {e}"),
        })?;
        Self::parse(&text, ManifestOrigin::File(path.to_owned()))
    }

    /// Parses manifest text; relative paths resolve against `origin`'s directory.
    pub fn parse(text: &str, origin: ManifestOrigin) -> Result<Manifest, ManifestError> {
        let fail = |line: Option<usize>, message: String| ManifestError {
            origin: origin.describe(),
            line,
            message,
        };
        let raw: RawManifest = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            fail(line, describe_toml_error(e.message()))
        })?;
        let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).map(|i| i + 1);
        if raw.name.trim().is_empty() {
            return Err(fail(line_of("name"), "`name` must not be empty".into()));
        }
        let component = parse_component(&raw.component, origin.base_dir())
            .map_err(|m| fail(line_of("component"), m))?;
        let mut handlers = Vec::new();
        let mut children_root = origin.base_dir().to_owned();
        let mut environment_allow = Vec::new();
        for (i, table) in raw.handler.iter().enumerate() {
            if let Some(root) = table.get("root") {
                let root = root.as_str().ok_or_else(|| {
                    fail(
                        nth_line(text, "[[handler]]", i),
                        format!("handler {}: `root` must be a string (a directory)", i + 1),
                    )
                })?;
                children_root = origin.base_dir().join(root);
            }
            if let Some(allow) = table.get("allow") {
                environment_allow = allow
                    .as_array()
                    .and_then(|a| a.iter().map(|v| v.as_str().map(str::to_owned)).collect())
                    .ok_or_else(|| {
                        fail(
                            nth_line(text, "[[handler]]", i),
                            format!(
                                "handler {}: `allow` must be a list of variable names (a trailing `*` matches a prefix)",
                                i + 1
                            ),
                        )
                    })?;
            }
            let kind = parse_handler(table).map_err(|m| {
                fail(
                    nth_line(text, "[[handler]]", i),
                    format!("handler {}: {m}", i + 1),
                )
            })?;
            if kind != HandlerKind::Runtime && !handlers.contains(&kind) {
                handlers.push(kind);
            }
        }
        let limits = match raw.limits {
            None => Limits::default(),
            Some(l) => {
                let limits = Limits {
                    memory_mb: l.memory_mb.unwrap_or(DEFAULT_MEMORY_MB),
                    max_call_cpu_ms: l.max_call_cpu_ms.unwrap_or(DEFAULT_MAX_CALL_CPU_MS),
                };
                if limits.memory_mb == 0 {
                    return Err(fail(
                        line_of("memory_mb"),
                        "`limits.memory_mb` must be at least 1".into(),
                    ));
                }
                limits
            }
        };
        let mut chain = ChainSettings::default();
        if let Some(raw) = raw.chain {
            if let Some(d) = raw.durability {
                chain.durability = Some(theater_chain::Durability::parse(&d).ok_or_else(|| {
                    fail(
                        line_of("durability"),
                        format!(
                            "unknown durability {d:?}: use \"every-event\" or \"batched\" (or save_chain = false for none)"
                        ),
                    )
                })?);
            }
            chain.snapshot_every = raw.snapshot_every.unwrap_or(chain.snapshot_every);
        }
        let messaging = match raw.messaging {
            None => MessagingSettings::default(),
            Some(m) => {
                let d = MessagingSettings::default();
                let settings = MessagingSettings {
                    request_timeout_ms: m.request_timeout_ms.unwrap_or(d.request_timeout_ms),
                    mailbox_capacity: m.mailbox_capacity.unwrap_or(d.mailbox_capacity),
                    max_message_bytes: m.max_message_bytes.unwrap_or(d.max_message_bytes),
                };
                if settings.mailbox_capacity == 0 {
                    return Err(fail(
                        line_of("mailbox_capacity"),
                        "`messaging.mailbox_capacity` must be at least 1".into(),
                    ));
                }
                settings
            }
        };
        let parse_restart = |value: &str| {
            RestartType::parse(value).ok_or_else(|| {
                fail(
                    line_of("restart"),
                    format!(
                        "unknown restart type {value:?}: use \"permanent\", \"transient\" or \"temporary\""
                    ),
                )
            })
        };
        let mut supervision = SupervisorSpec::default();
        if let Some(raw) = raw.supervision {
            if let Some(s) = raw.strategy {
                supervision.strategy = Strategy::parse(&s).ok_or_else(|| {
                    fail(
                        line_of("strategy"),
                        format!(
                            "unknown strategy {s:?}: use \"one-for-one\", \"one-for-all\" or \"rest-for-one\""
                        ),
                    )
                })?;
            }
            if let Some(from) = raw.restart_from {
                supervision.restart_from = RestartFrom::parse(&from).ok_or_else(|| {
                    fail(
                        line_of("restart_from"),
                        format!("unknown restart_from {from:?}: use \"init\" or \"last-state\""),
                    )
                })?;
            }
            if let Some(r) = raw.restart {
                supervision.restart = parse_restart(&r)?;
            }
            supervision.max_restarts = raw.max_restarts.unwrap_or(supervision.max_restarts);
            supervision.period_ms = raw.period_ms.unwrap_or(supervision.period_ms);
            supervision.shutdown_timeout_ms = raw
                .shutdown_timeout_ms
                .unwrap_or(supervision.shutdown_timeout_ms);
            if supervision.period_ms == 0 {
                return Err(fail(
                    line_of("period_ms"),
                    "`supervision.period_ms` must be at least 1".into(),
                ));
            }
        }
        let restart = match raw.child.and_then(|c| c.restart) {
            Some(r) => Some(parse_restart(&r)?),
            None => None,
        };
        Ok(Manifest {
            name: raw.name,
            version: raw.version,
            description: raw.description,
            component,
            init_state: raw.init_state.map(|p| origin.base_dir().join(p)),
            save_chain: raw.save_chain.unwrap_or(true),
            handlers,
            limits,
            chain,
            messaging,
            supervision,
            restart,
            children_root,
            environment_allow,
            text: text.to_owned(),
            origin,
        })
    }

    /// Every granted handler, `runtime` first.
    pub fn granted(&self) -> impl Iterator<Item = HandlerKind> + '_ {
        std::iter::once(HandlerKind::Runtime).chain(self.handlers.iter().copied())
    }
}

fn nth_line(text: &str, needle: &str, n: usize) -> Option<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with(needle))
        .nth(n)
        .map(|(i, _)| i + 1)
}

fn parse_component(value: &str, base_dir: &Path) -> Result<ComponentSource, String> {
    if let Some(hex) = value.strip_prefix("store:") {
        let mut hash = [0u8; 32];
        hex::decode_to_slice(hex, &mut hash).map_err(|_| {
            format!("`component = {value:?}`: a store reference is `store:` and 64 hex digits")
        })?;
        return Ok(ComponentSource::Store(hash));
    }
    if value.trim().is_empty() {
        return Err("`component` must not be empty".into());
    }
    Ok(ComponentSource::Path(base_dir.join(value)))
}

fn parse_handler(table: &toml::Table) -> Result<HandlerKind, String> {
    let Some(ty) = table.get("type") else {
        return Err("missing field `type` (one of: runtime, message-server, supervisor, store, timing, random, environment, filesystem, process, http-client, http-framework)".into());
    };
    let Some(ty) = ty.as_str() else {
        return Err("`type` must be a string".into());
    };
    let kind = HandlerKind::parse(ty).ok_or_else(|| {
        let names: Vec<&str> = HandlerKind::ALL.iter().map(|k| k.name()).collect();
        format!(
            "unknown handler type {ty:?}{}",
            did_you_mean(ty, &names)
                .map(|s| format!(" (did you mean {s:?}?)"))
                .unwrap_or_else(|| format!(" (known types: {})", names.join(", ")))
        )
    })?;
    let allowed = kind.setting_keys();
    if let Some(key) = table
        .keys()
        .find(|k| *k != "type" && !allowed.contains(&k.as_str()))
    {
        return Err(if allowed.is_empty() {
            format!("handler type {ty:?} takes no settings, but has `{key}`")
        } else {
            format!(
                "handler type {ty:?} has no setting `{key}`{}",
                did_you_mean(key, allowed)
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default()
            )
        });
    }
    Ok(kind)
}

/// Rewrites serde's messages into one line and adds a suggestion for misspelt keys.
fn describe_toml_error(message: &str) -> String {
    let message = message.trim().replace('\n', " ");
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some(field) = rest.split('`').next()
    {
        let hint = did_you_mean(field, TOP_LEVEL_KEYS)
            .or_else(|| did_you_mean(field, TABLE_KEYS))
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        return format!("unknown key `{field}`{hint}");
    }
    message
}

/// The closest candidate within a small edit distance.
pub(crate) fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(text, ManifestOrigin::File("dir/manifest.toml".into()))
    }

    const BASE: &str = "name = \"a\"\nversion = \"0.1.0\"\ncomponent = \"a.wasm\"\n";

    #[test]
    fn minimal_manifest_parses_with_defaults() {
        let m = parse(BASE).unwrap();
        assert_eq!(m.component, ComponentSource::Path("dir/a.wasm".into()));
        assert!(m.save_chain);
        assert_eq!(m.limits, Limits::default());
        assert_eq!(m.granted().collect::<Vec<_>>(), vec![HandlerKind::Runtime]);
    }

    #[test]
    fn missing_field_is_named() {
        let err = parse("name = \"a\"\ncomponent = \"a.wasm\"\n").unwrap_err();
        assert!(err.to_string().contains("missing field `version`"), "{err}");
        assert!(!err.to_string().contains('\n'), "{err}");
    }

    #[test]
    fn unknown_key_is_named_with_line_and_suggestion() {
        let err = parse(&format!("{BASE}save_chian = true\n")).unwrap_err();
        let s = err.to_string();
        assert!(
            s.starts_with("manifest dir/manifest.toml:4: unknown key `save_chian`"),
            "{s}"
        );
        assert!(s.contains("did you mean `save_chain`"), "{s}");
    }

    #[test]
    fn unknown_handler_type_is_named_with_suggestion() {
        let err = parse(&format!("{BASE}[[handler]]\ntype = \"file-system\"\n")).unwrap_err();
        let s = err.to_string();
        assert!(s.contains("unknown handler type \"file-system\""), "{s}");
        assert!(s.contains("did you mean \"filesystem\""), "{s}");
        assert!(s.contains(":4:"), "{s}");
    }

    #[test]
    fn unknown_handler_setting_is_named() {
        let err = parse(&format!(
            "{BASE}[[handler]]\ntype = \"runtime\"\nroot = \"x\"\n"
        ))
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("takes no settings, but has `root`"),
            "{err}"
        );
    }

    #[test]
    fn store_component_reference_parses() {
        let hex = "ab".repeat(32);
        let m = parse(&BASE.replace("a.wasm", &format!("store:{hex}"))).unwrap();
        assert_eq!(m.component, ComponentSource::Store([0xab; 32]));
        assert!(parse(&BASE.replace("a.wasm", "store:zz")).is_err());
    }

    #[test]
    fn supervision_and_messaging_tables_parse() {
        let m = parse(&format!(
            "{BASE}[supervision]\nstrategy = \"rest-for-one\"\nmax_restarts = 5\nrestart_from = \"last-state\"\n[messaging]\nrequest_timeout_ms = 50\n[child]\nrestart = \"temporary\"\n"
        ))
        .unwrap();
        assert_eq!(m.supervision.strategy, Strategy::RestForOne);
        assert_eq!(m.supervision.max_restarts, 5);
        assert_eq!(m.supervision.restart_from, RestartFrom::LastState);
        assert_eq!(m.messaging.request_timeout_ms, 50);
        assert_eq!(m.restart, Some(RestartType::Temporary));
        let err = parse(&format!(
            "{BASE}[supervision]\nstrategy = \"one-for-some\"\n"
        ))
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("unknown strategy \"one-for-some\""),
            "{err}"
        );
        let err = parse(&format!("{BASE}[supervision]\nmax_restart = 1\n")).unwrap_err();
        assert!(
            err.to_string().contains("did you mean `max_restarts`"),
            "{err}"
        );
    }

    #[test]
    fn a_bare_file_name_resolves_against_the_current_directory() {
        let origin = ManifestOrigin::File("manifest.toml".into());
        assert_eq!(origin.base_dir(), Path::new("."));
        let m = Manifest::parse(
            &format!("{BASE}[[handler]]\ntype = \"supervisor\"\n"),
            origin,
        )
        .unwrap();
        assert_eq!(m.children_root, Path::new("."));
    }

    #[test]
    fn bad_durability_is_refused() {
        let err = parse(&format!("{BASE}[chain]\ndurability = \"fast\"\n")).unwrap_err();
        assert!(
            err.to_string().contains("unknown durability \"fast\""),
            "{err}"
        );
    }
}
