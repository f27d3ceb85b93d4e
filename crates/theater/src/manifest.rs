//! Actor manifests (TOML), documented key by key in `docs/manifest.md`.
//!
//! Parsing is strict: a missing field, an unknown key or an unknown handler type is an error that
//! names it, with the line, and suggests the likely intended name.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::family::{AnySettings, Families, Family, Grant, SettingsInput};
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
/// Bytes of messages an actor's mailbox holds when the manifest sets no
/// `[messaging] mailbox_bytes`.
pub const DEFAULT_MAILBOX_BYTES: u64 = 64 << 20;

/// The most any manifest may set (`docs/security.md` lists every limit): a manifest above one
/// is refused when it is parsed.
pub const MAX_MAILBOX_CAPACITY: u32 = 1_000_000;
pub const MAX_MAILBOX_BYTES: u64 = 4 << 30;
pub const MAX_MESSAGE_BYTES: u32 = 256 << 20;
pub const MAX_CHILDREN: u32 = 1_000_000;

/// The largest manifest file the runtime reads.
pub const MAX_MANIFEST_BYTES: u64 = 1 << 20;
/// The largest component file the runtime reads.
pub const MAX_COMPONENT_BYTES: u64 = 256 << 20;
/// The largest `init_state` file the runtime reads.
pub const MAX_INIT_STATE_BYTES: u64 = 64 << 20;

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
    /// Granted handlers with their settings: those always granted first, then the manifest's
    /// `[[handler]]` tables in order.
    pub handlers: Vec<HandlerGrant>,
    pub limits: Limits,
    pub chain: ChainSettings,
    pub messaging: MessagingSettings,
    /// How this actor supervises its children (`[supervision]`).
    pub supervision: SupervisorSpec,
    /// This actor's restart type as a child (`[child] restart`); `None`: its parent's default.
    pub restart: Option<RestartType>,
    /// The runtime-owned keys the manifest sets itself (`limits.memory_mb`, ...): attenuation
    /// refuses a child's explicit value above its parent's and narrows the ones it left unset.
    pub(crate) explicit: BTreeSet<&'static str>,
    /// The manifest's text, recorded in the spawn event.
    pub text: String,
    /// Where it was read from, for error messages and relative paths.
    pub origin: ManifestOrigin,
}

/// One granted handler and its settings.
#[derive(Clone)]
pub struct HandlerGrant {
    pub(crate) family: Arc<dyn Family>,
    pub(crate) settings: AnySettings,
}

impl HandlerGrant {
    /// The manifest `type`.
    pub fn name(&self) -> &'static str {
        self.family.name()
    }
}

impl std::fmt::Debug for HandlerGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.name())
    }
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
    /// The largest message this actor accepts (answers to its requests included).
    pub max_message_bytes: u32,
    /// Bytes of messages waiting in this actor's mailbox at most; past it a sender waits as
    /// for a full mailbox. An empty mailbox takes any one message within `max_message_bytes`.
    pub mailbox_bytes: u64,
}

impl Default for MessagingSettings {
    fn default() -> Self {
        MessagingSettings {
            request_timeout_ms: DEFAULT_REQUEST_TIMEOUT_MS,
            mailbox_capacity: DEFAULT_MAILBOX_CAPACITY,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            mailbox_bytes: DEFAULT_MAILBOX_BYTES,
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
    mailbox_bytes: Option<u64>,
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
    max_children: Option<u32>,
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
    "mailbox_bytes",
    "strategy",
    "max_restarts",
    "period_ms",
    "restart",
    "restart_from",
    "shutdown_timeout_ms",
    "max_children",
];

impl Manifest {
    // The public constructors (`from_file`, `parse` and their `_with` forms) are in
    // `crate::handlers`, which knows the built-in handler types; these take any registry.

    /// Reads and validates the manifest file at `path`. The file must be a regular file of at
    /// most [`MAX_MANIFEST_BYTES`].
    pub(crate) fn read(path: &Path, families: &dyn Families) -> Result<Manifest, ManifestError> {
        let fail = |message: String| ManifestError {
            origin: path.display().to_string(),
            line: None,
            message,
        };
        let bytes = theater_files::read_file(path, MAX_MANIFEST_BYTES, "manifest")
            .map_err(|e| fail(format!("cannot read it: {e}")))?;
        let text = String::from_utf8(bytes).map_err(|_| fail("it is not UTF-8 text".into()))?;
        Self::parse_in(&text, ManifestOrigin::File(path.to_owned()), families)
    }

    /// Parses manifest text; relative paths resolve against `origin`'s directory.
    pub(crate) fn parse_in(
        text: &str,
        origin: ManifestOrigin,
        families: &dyn Families,
    ) -> Result<Manifest, ManifestError> {
        let fail = |line: Option<usize>, message: String| ManifestError {
            origin: origin.describe(),
            line,
            message,
        };
        let raw: RawManifest = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| {
                let end = s.start.min(text.len());
                text.as_bytes()[..end]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count()
                    + 1
            });
            fail(line, describe_toml_error(e.message()))
        })?;
        let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).map(|i| i + 1);
        if raw.name.trim().is_empty() {
            return Err(fail(line_of("name"), "`name` must not be empty".into()));
        }
        let component = parse_component(&raw.component, origin.base_dir())
            .map_err(|m| fail(line_of("component"), m))?;
        let mut handlers: Vec<HandlerGrant> = Vec::new();
        for (i, table) in raw.handler.iter().enumerate() {
            let at = |m: String| {
                fail(
                    nth_line(text, "[[handler]]", i),
                    format!("handler {}: {m}", i + 1),
                )
            };
            let family = parse_handler(table, families).map_err(at)?;
            if handlers.iter().any(|g| g.name() == family.name()) {
                return Err(at(format!(
                    "handler type {:?} is listed twice: merge its settings into one table",
                    family.name()
                )));
            }
            let mut settings = table.clone();
            settings.remove("type");
            let input = SettingsInput {
                table: &settings,
                base_dir: origin.base_dir(),
            };
            let settings = family.parse(&input).map_err(at)?;
            handlers.push(HandlerGrant { family, settings });
        }
        // Handlers every actor has come first, with default settings unless listed.
        for family in families.always_granted().into_iter().rev() {
            if !handlers.iter().any(|g| g.name() == family.name()) {
                let empty = toml::Table::new();
                let input = SettingsInput {
                    table: &empty,
                    base_dir: origin.base_dir(),
                };
                let settings = family
                    .parse(&input)
                    .map_err(|m| fail(None, format!("handler {:?}: {m}", family.name())))?;
                handlers.insert(0, HandlerGrant { family, settings });
            }
        }

        let mut explicit = BTreeSet::new();
        let mut set = |key: &'static str, present: bool| {
            if present {
                explicit.insert(key);
            }
        };
        set("save_chain", raw.save_chain.is_some());
        let mut limits = Limits::default();
        if let Some(l) = raw.limits {
            set("limits.memory_mb", l.memory_mb.is_some());
            set("limits.max_call_cpu_ms", l.max_call_cpu_ms.is_some());
            limits.memory_mb = l.memory_mb.unwrap_or(limits.memory_mb);
            limits.max_call_cpu_ms = l.max_call_cpu_ms.unwrap_or(limits.max_call_cpu_ms);
            if limits.memory_mb == 0 {
                return Err(fail(
                    line_of("memory_mb"),
                    "`limits.memory_mb` must be at least 1".into(),
                ));
            }
        }
        let mut chain = ChainSettings::default();
        if let Some(raw) = raw.chain {
            set("chain.durability", raw.durability.is_some());
            set("chain.snapshot_every", raw.snapshot_every.is_some());
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
        let mut messaging = MessagingSettings::default();
        if let Some(m) = raw.messaging {
            set(
                "messaging.request_timeout_ms",
                m.request_timeout_ms.is_some(),
            );
            set("messaging.mailbox_capacity", m.mailbox_capacity.is_some());
            set("messaging.max_message_bytes", m.max_message_bytes.is_some());
            set("messaging.mailbox_bytes", m.mailbox_bytes.is_some());
            let d = messaging;
            messaging = MessagingSettings {
                request_timeout_ms: m.request_timeout_ms.unwrap_or(d.request_timeout_ms),
                mailbox_capacity: m.mailbox_capacity.unwrap_or(d.mailbox_capacity),
                max_message_bytes: m.max_message_bytes.unwrap_or(d.max_message_bytes),
                mailbox_bytes: m.mailbox_bytes.unwrap_or(d.mailbox_bytes),
            };
            if messaging.mailbox_capacity == 0 {
                return Err(fail(
                    line_of("mailbox_capacity"),
                    "`messaging.mailbox_capacity` must be at least 1".into(),
                ));
            }
            let over = |key: &str, value: u64, max: u64| {
                (value > max).then(|| {
                    fail(
                        line_of(key),
                        format!("`messaging.{key}` = {value} is more than the most allowed, {max}"),
                    )
                })
            };
            let m = &messaging;
            if let Some(e) = over(
                "mailbox_capacity",
                m.mailbox_capacity.into(),
                MAX_MAILBOX_CAPACITY.into(),
            )
            .or_else(|| over("mailbox_bytes", m.mailbox_bytes, MAX_MAILBOX_BYTES))
            .or_else(|| {
                over(
                    "max_message_bytes",
                    m.max_message_bytes.into(),
                    MAX_MESSAGE_BYTES.into(),
                )
            }) {
                return Err(e);
            }
        }
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
            set("supervision.strategy", raw.strategy.is_some());
            set("supervision.restart_from", raw.restart_from.is_some());
            set("supervision.restart", raw.restart.is_some());
            set("supervision.max_restarts", raw.max_restarts.is_some());
            set("supervision.period_ms", raw.period_ms.is_some());
            set(
                "supervision.shutdown_timeout_ms",
                raw.shutdown_timeout_ms.is_some(),
            );
            set("supervision.max_children", raw.max_children.is_some());
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
            supervision.max_children = raw.max_children.unwrap_or(supervision.max_children);
            if supervision.period_ms == 0 {
                return Err(fail(
                    line_of("period_ms"),
                    "`supervision.period_ms` must be at least 1".into(),
                ));
            }
            if supervision.max_children > MAX_CHILDREN {
                return Err(fail(
                    line_of("max_children"),
                    format!(
                        "`supervision.max_children` = {} is more than the most allowed, {MAX_CHILDREN}",
                        supervision.max_children
                    ),
                ));
            }
        }
        let restart = match raw.child.and_then(|c| c.restart) {
            Some(r) => {
                explicit.insert("child.restart");
                Some(parse_restart(&r)?)
            }
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
            explicit,
            text: text.to_owned(),
            origin,
        })
    }

    /// The names of every granted handler, those always granted first.
    pub fn granted(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.handlers.iter().map(HandlerGrant::name)
    }

    /// Whether the manifest grants handler type `name`.
    pub fn grants_handler(&self, name: &str) -> bool {
        self.granted().any(|n| n == name)
    }

    /// The settings of the granted handler whose settings type is `S`.
    pub fn settings<S: 'static>(&self) -> Option<&S> {
        self.handlers
            .iter()
            .find_map(|g| g.settings.downcast_ref::<S>())
    }

    /// What the granted handlers let the runtime and other handlers rely on.
    pub fn grants(&self) -> Vec<Grant> {
        self.handlers
            .iter()
            .flat_map(|g| g.family.grants(&g.settings))
            .collect()
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

fn parse_handler(table: &toml::Table, families: &dyn Families) -> Result<Arc<dyn Family>, String> {
    let names = families.names();
    let Some(ty) = table.get("type") else {
        return Err(format!(
            "missing field `type` (one of: {})",
            names.join(", ")
        ));
    };
    let Some(ty) = ty.as_str() else {
        return Err("`type` must be a string".into());
    };
    let family = families.family(ty).ok_or_else(|| {
        format!(
            "unknown handler type {ty:?}{}",
            did_you_mean(ty, &names)
                .map(|s| format!(" (did you mean {s:?}?)"))
                .unwrap_or_else(|| format!(" (known types: {})", names.join(", ")))
        )
    })?;
    let allowed: Vec<&str> = family.keys().iter().map(|k| k.key).collect();
    if let Some(key) = table
        .keys()
        .find(|k| *k != "type" && !allowed.contains(&k.as_str()))
    {
        return Err(if allowed.is_empty() {
            format!("handler type {ty:?} takes no settings, but has `{key}`")
        } else {
            format!(
                "handler type {ty:?} has no setting `{key}`{}",
                did_you_mean(key, &allowed)
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default()
            )
        });
    }
    Ok(family)
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

/// Every key the manifest parser accepts outside `[[handler]]` tables, as `table.key` or a
/// top-level key, read off the parser's own types.
#[cfg(test)]
pub(crate) fn accepted_keys() -> Vec<String> {
    use serde::de::{self, Deserializer, Visitor};

    /// A deserializer that only records the field names a struct asks for.
    struct Fields(&'static [&'static str]);
    #[derive(Debug)]
    struct Done;
    impl std::fmt::Display for Done {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("fields read")
        }
    }
    impl std::error::Error for Done {}
    impl de::Error for Done {
        fn custom<T: std::fmt::Display>(_: T) -> Self {
            Done
        }
    }
    impl<'de> Deserializer<'de> for &mut Fields {
        type Error = Done;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Done> {
            Err(Done)
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Done> {
            self.0 = fields;
            Err(Done)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    fn fields_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
        let mut d = Fields(&[]);
        let _ = T::deserialize(&mut d);
        d.0
    }

    let tables: &[(&str, &[&str])] = &[
        ("limits", fields_of::<RawLimits>()),
        ("chain", fields_of::<RawChain>()),
        ("messaging", fields_of::<RawMessaging>()),
        ("supervision", fields_of::<RawSupervision>()),
        ("child", fields_of::<RawChild>()),
    ];
    let mut keys = Vec::new();
    for key in fields_of::<RawManifest>() {
        match tables.iter().find(|(t, _)| t == key) {
            Some((table, fields)) => keys.extend(fields.iter().map(|f| format!("{table}.{f}"))),
            None => keys.push(key.to_string()),
        }
    }
    // Every table of the manifest is walked above: a new one must be added there.
    assert_eq!(
        fields_of::<RawManifest>().len(),
        keys.iter().filter(|k| !k.contains('.')).count() + tables.len(),
        "a manifest table is missing from accepted_keys"
    );
    keys
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
        assert_eq!(m.granted().collect::<Vec<_>>(), vec!["runtime"]);
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
        // (The I/O families' names are suggested too: theater-handlers, tests/manifest.rs.)
        let err = parse(&format!("{BASE}[[handler]]\ntype = \"message_server\"\n")).unwrap_err();
        let s = err.to_string();
        assert!(s.contains("unknown handler type \"message_server\""), "{s}");
        assert!(s.contains("did you mean \"message-server\""), "{s}");
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
        let root = m.settings::<crate::handlers::SupervisorSettings>().unwrap();
        assert_eq!(root.grants_directory(), Path::new("."));
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
