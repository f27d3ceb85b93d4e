//! The reading commands: `chains`, `events`, `export`, `verify`. They open the database
//! read-only, so they work while a `theater run` writes to the same data dir.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};
use theater::chain::{
    ChainFile, ChainReader, Event, EventKind, HostResult, PublicKey, StoredEvent,
};
use theater::describe::escape;

#[derive(clap::Args)]
pub struct ChainsArgs {
    /// One JSON object per line
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct EventsArgs {
    /// The actor's id, or a unique prefix of it
    actor: String,
    /// One JSON object per line
    #[arg(long)]
    json: bool,
    /// Only events of this type (spawn, instance, call-start, call-end, host-call, trap,
    /// shutdown); repeat or separate with commas for several
    #[arg(long = "type", value_name = "TYPE", value_delimiter = ',')]
    types: Vec<String>,
    /// Start at this event index
    #[arg(long, value_name = "INDEX")]
    from: Option<u64>,
    /// Stop after this event index
    #[arg(long, value_name = "INDEX")]
    to: Option<u64>,
    /// Keep printing new events as the running actor records them, until it shuts down or
    /// Ctrl-C
    #[arg(short, long)]
    follow: bool,
}

#[derive(clap::Args)]
pub struct ExportArgs {
    /// The actor's id, or a unique prefix of it
    actor: String,
    /// The file to write (the format is in docs/chain-format.md)
    #[arg(short, long)]
    output: PathBuf,
    /// Leave out the component and recorded states, keeping only the manifest (smaller;
    /// replaying the file then needs `--component` and the data dir)
    #[arg(long)]
    without_blobs: bool,
}

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// An actor id (or unique prefix) in the data dir, or a file written by `theater export`
    target: String,
    /// The public key (64 hex digits, from `theater key` on the node that ran the actor) the
    /// chain must be signed by: proof that this node wrote it and that it was not rewritten
    #[arg(long, value_name = "PUBKEY")]
    key: Option<String>,
}

pub fn chains(args: ChainsArgs, data_dir: PathBuf) -> Result<ExitCode> {
    let reader = ChainReader::open(&data_dir)?;
    let mut out = std::io::stdout().lock();
    for c in reader.chains()? {
        if args.json {
            writeln!(
                out,
                "{}",
                json!({
                    "id": c.actor_id,
                    "name": c.name,
                    "parent": c.parent,
                    "created_ms": c.created_ms,
                    "events": c.head.len,
                    "head": c.head.head.to_hex(),
                })
            )?;
        } else {
            writeln!(
                out,
                "{}  {:<20} {:>6} events  head {}  {}",
                escape(&c.actor_id),
                escape(&c.name),
                c.head.len,
                &c.head.head.to_hex()[..16],
                format_time(c.created_ms)
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// How often `events --follow` looks for new events.
const FOLLOW_POLL: std::time::Duration = std::time::Duration::from_millis(200);

pub fn events(args: EventsArgs, data_dir: PathBuf) -> Result<ExitCode> {
    for ty in &args.types {
        if !EventKind::TYPE_NAMES.contains(&ty.as_str()) {
            bail!(
                "--type {ty:?} is not an event type (one of: {})",
                EventKind::TYPE_NAMES.join(", ")
            );
        }
    }
    if let (Some(from), Some(to)) = (args.from, args.to)
        && from > to
    {
        bail!("--from {from} is after --to {to}");
    }
    let reader = ChainReader::open(&data_dir)?;
    let info = reader.resolve(&args.actor)?;
    let mut out = std::io::stdout().lock();
    let mut next = args.from.unwrap_or(0);
    let mut first = true;
    loop {
        let (now, stored) = reader.chain_from(&info.actor_id, next)?;
        if first && !args.json {
            writeln!(
                out,
                "chain of {} ({}), {} events",
                escape(&now.name),
                escape(&now.actor_id),
                now.head.len
            )?;
        }
        first = false;
        let mut ended = false;
        for s in &stored {
            let index = next;
            next += 1;
            if args.to.is_some_and(|to| index > to) {
                return Ok(ExitCode::SUCCESS);
            }
            let event = Event::decode(&s.bytes).map_err(|e| {
                anyhow!(
                    "chain {}: event {index} is malformed: {e} (run `theater verify {}`)",
                    info.actor_id,
                    info.actor_id
                )
            })?;
            ended = matches!(event.kind, EventKind::Shutdown { .. });
            if !args.types.is_empty() && !args.types.iter().any(|t| t == event.kind.type_name()) {
                continue;
            }
            if args.json {
                writeln!(out, "{}", event_json(index as usize, s, &event))?;
            } else {
                writeln!(out, "{}", event_line(index as usize, s, &event))?;
            }
        }
        if !args.follow || args.to.is_some_and(|to| next > to) {
            return Ok(ExitCode::SUCCESS);
        }
        if ended {
            out.flush()?;
            crate::output::status("the actor has shut down; no longer following");
            return Ok(ExitCode::SUCCESS);
        }
        out.flush()?;
        std::thread::sleep(FOLLOW_POLL);
    }
}

pub fn export(args: ExportArgs, data_dir: PathBuf) -> Result<ExitCode> {
    let mut chain = load_chain(&args.actor, &data_dir)?;
    // What a replay of the file alone needs, as far as this data dir has it. The manifest
    // (small) always goes: without it the file does not say what ran.
    let manifest = chain.file.manifest_hash();
    let wanted = if args.without_blobs {
        manifest.into_iter().collect()
    } else {
        chain.file.referenced_blobs()
    };
    if !wanted.is_empty() {
        let content = theater_store::ContentStore::open(&data_dir)?;
        for hash in wanted {
            match content.get(&hash.0)? {
                Some(bytes) => chain.file.blobs.push((hash, bytes)),
                None if Some(hash) == manifest => {
                    crate::output::status(&format!(
                        "warning: this data dir's content store has no manifest {}; the file cannot be replayed without it",
                        hash.to_hex()
                    ));
                }
                None => {}
            }
        }
    }
    let file = &chain.file;
    std::fs::write(&args.output, file.encode())
        .with_context(|| format!("writing {}", args.output.display()))?;
    let signed = match &file.signatures {
        Some(s) => format!(", signed by {}", s.key),
        None => ", unsigned (written before chains were signed)".to_owned(),
    };
    let blobs: usize = file.blobs.iter().map(|(_, b)| b.len()).sum();
    crate::output::status(&format!(
        "exported {} events of {} ({}){signed}, with {} blob{} ({} KiB), to {}",
        file.events.len(),
        chain.name,
        file.actor_id,
        file.blobs.len(),
        if file.blobs.len() == 1 { "" } else { "s" },
        blobs.div_ceil(1024),
        args.output.display()
    ));
    Ok(ExitCode::SUCCESS)
}

/// A chain read from the data dir or from an exported file, as a file.
pub struct LoadedChain {
    pub name: String,
    pub file: ChainFile,
    /// The path it was read from, if it was a file.
    pub path: Option<PathBuf>,
}

/// The largest exported chain file the CLI reads.
const MAX_CHAIN_FILE_BYTES: u64 = 16 << 30;

/// `target` as an exported file if there is such a file, else as an actor id (or prefix) in
/// the data dir, with the stored head's signature and the data dir's node key.
pub fn load_chain(target: &str, data_dir: &Path) -> Result<LoadedChain> {
    let path = Path::new(target);
    if path.is_file() {
        // A regular file of bounded size: a FIFO or a device named as a chain file is refused
        // instead of hanging or filling memory.
        let bytes = theater_files::read_file(path, MAX_CHAIN_FILE_BYTES, "chain file")?;
        let file =
            ChainFile::decode(&bytes).map_err(|e| anyhow!("chain file {}: {e}", path.display()))?;
        let name = file
            .events
            .first()
            .and_then(|e| Event::decode(&e.bytes).ok())
            .and_then(|e| match e.kind {
                EventKind::Spawn(s) => Some(s.name),
                _ => None,
            })
            .unwrap_or_else(|| "?".into());
        return Ok(LoadedChain {
            name,
            file,
            path: Some(path.to_owned()),
        });
    }
    let reader = ChainReader::open(data_dir)
        .map_err(|e| anyhow!("{e} ({target:?} is not a file either)"))?;
    let info = reader.resolve(target)?;
    let (info, events) = reader.chain(&info.actor_id)?;
    Ok(LoadedChain {
        name: info.name.clone(),
        file: ChainFile::from_stored(&info, events, reader.node_key()?),
        path: None,
    })
}

pub fn verify(args: VerifyArgs, data_dir: PathBuf) -> Result<ExitCode> {
    let chain = load_chain(&args.target, &data_dir)?;
    let what = match &chain.path {
        Some(path) => format!("chain file {}", path.display()),
        None => format!("chain of {} ({})", chain.name, chain.file.actor_id),
    };
    let checked = match &args.key {
        Some(key) => {
            let key = PublicKey::from_hex(key).ok_or_else(|| {
                anyhow!("--key {key:?} is not a public key: it must be 64 hex digits (see `theater key`)")
            })?;
            chain.file.verify_signed_by(&key)
        }
        None => chain.file.verify(),
    };
    let verified = checked.map_err(|e| anyhow!("{what}: {e}"))?;
    let Some(signer) = verified.signer else {
        bail!(
            "{what}: the hash links are intact, but the chain is not signed, so nothing shows it was not rewritten (chains written before signing existed have no signature)"
        );
    };
    let trusted = if args.key.is_some() {
        "the given key"
    } else {
        "the key in the file; pass --key to check it is the node you expect"
    };
    println!(
        "ok: {what} verified: actor {}, {} events, head {}, signed by {signer} ({trusted})",
        chain.file.actor_id, verified.head.len, verified.head.head
    );
    Ok(ExitCode::SUCCESS)
}

/// `theater key`: the data dir's node public key, created if there is none yet.
pub fn key(data_dir: PathBuf) -> Result<ExitCode> {
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating data dir {}", data_dir.display()))?;
    let key = theater::chain::NodeKey::load_or_create(&data_dir)?;
    println!("{}", key.public());
    Ok(ExitCode::SUCCESS)
}

pub fn migrate(data_dir: PathBuf) -> Result<ExitCode> {
    match theater::chain::migrate_data_dir(&data_dir)? {
        Some(from) => println!(
            "migrated {} from schema version {from}: events are now stored in segments",
            data_dir.display()
        ),
        None => println!("{} is already in the current format", data_dir.display()),
    }
    Ok(ExitCode::SUCCESS)
}

/// `HH:MM:SS.mmm` UTC.
fn format_time(ms: u64) -> String {
    let secs = ms / 1000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60,
        ms % 1000
    )
}

fn short(hash: &theater::chain::Hash) -> String {
    hash.to_hex()[..12].to_owned()
}

fn event_line(index: usize, stored: &StoredEvent, event: &Event) -> String {
    let detail = theater::describe::event(&event.kind);
    format!(
        "#{index:<4} {}  {}  {:<10}  {detail}",
        format_time(event.timestamp_ms),
        short(&stored.hash),
        event.kind.type_name()
    )
}

fn hex_opt(hash: &Option<theater::chain::Hash>) -> Value {
    hash.as_ref()
        .map(|h| Value::from(h.to_hex()))
        .unwrap_or(Value::Null)
}

fn event_json(index: usize, stored: &StoredEvent, event: &Event) -> Value {
    let mut v = json!({
        "index": index,
        "hash": stored.hash.to_hex(),
        "timestamp_ms": event.timestamp_ms,
        "type": event.kind.type_name(),
    });
    let fields = match &event.kind {
        EventKind::Spawn(s) => json!({
            "actor_id": s.actor_id, "name": s.name, "component": s.component.to_hex(),
            "parent": s.parent, "initial_state": hex_opt(&s.initial_state),
            "manifest": s.manifest.text(), "manifest_hash": hex_opt(&s.manifest.hash()),
        }),
        EventKind::Instance { component, reason } => json!({
            "component": component.to_hex(), "reason": reason.name(),
        }),
        EventKind::CallStart(c) => json!({
            "export": c.export, "state": hex_opt(&c.state),
            "params": theater::describe::params(&c.export, &c.params),
            "params_hex": hex::encode(&c.params),
            "message_id": c.message_id, "sender": c.sender,
        }),
        EventKind::CallEnd(c) => match &c.outcome {
            Ok(result) => json!({
                "export": c.export, "ok": true, "result_hex": hex::encode(result),
                "state": hex_opt(&c.state),
            }),
            Err(e) => json!({
                "export": c.export, "ok": false, "error": e, "state": hex_opt(&c.state),
            }),
        },
        EventKind::HostCall(h) => {
            let name = format!("{}.{}", h.interface, h.function);
            let result = match &h.result {
                HostResult::Value(r) => json!({
                    "value": theater::describe::result(&name, r), "hex": hex::encode(r),
                }),
                HostResult::ChainRef { len, head } => json!({
                    "chain_ref": { "len": len, "head": head.to_hex() },
                }),
                HostResult::ActorChainRef {
                    actor_id,
                    len,
                    head,
                } => json!({
                    "chain_ref": { "actor_id": actor_id, "len": len, "head": head.to_hex() },
                }),
                HostResult::Error(message) => json!({ "error": message }),
            };
            json!({
                "interface": h.interface, "function": h.function, "message_id": h.message_id,
                "params": theater::describe::params(&name, &h.params),
                "params_hex": hex::encode(&h.params), "result": result,
            })
        }
        EventKind::Trap { kind, message } => json!({ "kind": kind.name(), "message": message }),
        EventKind::Shutdown { reason, data } => json!({
            "reason": reason.name(), "data_hex": data.as_deref().map(hex::encode),
        }),
        EventKind::Snapshot { state } => json!({ "state": hex_opt(state) }),
        EventKind::Recovery(r) => json!({
            "state": hex_opt(&r.state), "interrupted": r.interrupted, "message_id": r.message_id,
        }),
    };
    if let (Value::Object(v), Value::Object(fields)) = (&mut v, fields) {
        v.extend(fields);
    }
    v
}
