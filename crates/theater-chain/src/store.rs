//! Chains persisted in the data dir's embedded SQLite database (`theater.db`, WAL mode).
//!
//! One [`ChainWriter`] per process owns the write connection on a thread of its own and commits
//! appends in batches (group commit). WAL mode lets [`ChainReader`]s, in this process or another
//! (`theater events` while `theater run` writes), read committed events at any time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::chain::{ChainHead, StoredEvent};
use crate::commit::{HeadProof, sign_commit};
use crate::encoding::{Reader, Writer};
use crate::hash::Hash;
use crate::sign::{KeyError, NodeKey, PublicKey, Signature};
use theater_store::ContentHash;

/// The database file inside a data dir.
pub const DB_FILE: &str = "theater.db";
/// Version 2 added head signatures (`chains.signature`) and the `meta` table. Version 3 keeps
/// events in segments (one row per chain per commit, not one per event) and signs each commit
/// once (`chains.proof` holds a head's Merkle path to the signed root).
const SCHEMA_VERSION: i64 = 3;

/// The most events one segment row holds, and about the most bytes: a ranged read decodes at
/// most one segment it does not need.
const SEGMENT_EVENTS: u64 = 1024;
const SEGMENT_BYTES: usize = 1 << 20;

/// How long a connection waits for another writer's lock before failing.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "no chains in {0}: there is no {DB_FILE} there yet (run an actor first, or pass --data-dir)"
    )]
    NoDatabase(PathBuf),
    #[error("database {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "database {path} has schema version {found}; this build reads version {SCHEMA_VERSION} (was it written by a newer Theater?)"
    )]
    Schema { path: PathBuf, found: i64 },
    #[error(
        "database {path} was written by an older Theater (schema version {found}, one row per event); run `theater migrate --data-dir {}` once to convert it in place to version {SCHEMA_VERSION}",
        path.parent().unwrap_or(Path::new(".")).display()
    )]
    OldSchema { path: PathBuf, found: i64 },
    #[error("no actor matches {0:?} (see `theater chains`)")]
    UnknownActor(String),
    #[error("{prefix:?} matches {count} actors; give more of the id")]
    AmbiguousActor { prefix: String, count: usize },
    #[error("the chain writer stopped: {0}")]
    WriterFailed(String),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("creating data dir {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What `theater chains` lists about one actor's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainInfo {
    pub actor_id: String,
    pub name: String,
    pub parent: Option<String>,
    pub created_ms: u64,
    /// Committed events and the hash of the last one.
    pub head: ChainHead,
    /// The node's proof of `head` (none for a chain written before signing existed).
    pub signature: Option<HeadProof>,
    /// The directory of the manifest the actor was spawned from, against which its relative
    /// paths resolve (recovery needs it); none for an inline manifest or an older chain.
    pub manifest_dir: Option<String>,
}

/// When an append counts as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// The append is acknowledged once its transaction is committed and fsynced.
    EveryEvent,
    /// Appends are committed by the writer in groups, every [`BATCH_INTERVAL`], without fsync on
    /// commit (SQLite WAL, `synchronous=NORMAL`). A crash of the process loses only events not
    /// yet committed (the last few milliseconds); a crash of the OS may also lose the last
    /// commits. Never corrupts the database.
    #[default]
    Batched,
}

impl Durability {
    pub fn parse(s: &str) -> Option<Durability> {
        match s {
            "every-event" => Some(Durability::EveryEvent),
            "batched" => Some(Durability::Batched),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Durability::EveryEvent => "every-event",
            Durability::Batched => "batched",
        }
    }
}

/// How often the writer commits batched appends. Appends with an [`Ack`] and flushes wake it
/// at once instead; batched appends never wake it, so appending costs no system call.
pub const BATCH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(2);

/// Called once the append or flush it was given with is committed (or failed).
pub type Ack = Box<dyn FnOnce(Result<(), String>) + Send>;

enum Command {
    Register(ChainInfo),
    Append {
        actor_id: Arc<str>,
        index: u64,
        event: StoredEvent,
        ack: Option<Ack>,
    },
    /// Consecutive events of one chain from a [`ChainAppender`], starting at `first`, in the
    /// segment layout; `cost` is the queue room they hold.
    Unit {
        actor_id: Arc<str>,
        first: u64,
        data: Vec<u8>,
        cost: u64,
    },
    Flush(Ack),
    /// A flush whose commit is fsynced (`every-event` durability).
    Sync(Ack),
    /// A content-store blob (see [`theater_store::BlobWriter`]); `cost` is its queue room.
    Blob {
        hash: ContentHash,
        data: Arc<[u8]>,
        cost: u64,
    },
    /// A change to other tables (see [`ChainWriter::transact`]), with what it answered in the
    /// last attempt at committing its batch.
    Transact {
        op: TransactOp,
        outcome: Option<Result<(), String>>,
        cost: u64,
        ack: Ack,
    },
}

/// A change [`ChainWriter::transact`] runs in the writer's transaction. The outer error is the
/// database's (it fails the whole batch, which is retried as a whole, running the change
/// again); the inner one is the change's own refusal, which rolls back that change only.
pub type TransactOp = Box<dyn FnMut(&Connection) -> rusqlite::Result<Result<(), String>> + Send>;

/// Content-store blobs handed to the writer and not committed yet.
#[derive(Default)]
struct QueuedBlobs {
    /// Not taken by the writer yet.
    new: Vec<(ContentHash, Arc<[u8]>)>,
    /// Every blob queued and not yet committed (or given up), for readers.
    unwritten: HashMap<ContentHash, Arc<[u8]>>,
    /// How many times the writer gave up a batch holding blobs (see `BlobWriter::losses`).
    lost: u64,
}

type BlobQueue = Arc<Mutex<QueuedBlobs>>;

/// A chain's appends on their way to the writer, without a channel: the appender adds each
/// event's bytes to one buffer, and the writer takes the whole buffer every round. So an
/// event costs a copy into a reused buffer and an uncontended lock, not an allocation and a
/// channel message, and the writer gets each chain's events as one unit.
struct Pending {
    actor_id: Arc<str>,
    inner: Mutex<PendingInner>,
}

#[derive(Default)]
struct PendingInner {
    /// The chain's row, to insert before its first events. Boxed: a `ChainInfo` is some 250
    /// bytes, and every live chain keeps this record long after its row is written.
    register: Option<Box<ChainInfo>>,
    first: u64,
    data: Vec<u8>,
    cost: u64,
    /// Whether the writer's dirty list holds this chain.
    listed: bool,
    /// How big the buffer the writer last took was: the next one starts at that size, so that
    /// a steady stream of events does not regrow its buffer every round.
    last_size: usize,
}

/// The most a fresh pending buffer reserves.
const MAX_RESERVE: usize = 64 << 10;

/// The chains with events waiting, for the writer's next round.
type DirtyList = Arc<Mutex<Vec<Arc<Pending>>>>;

/// Appends one chain's events through the writer (see [`ChainWriter::appender`]).
pub struct ChainAppender {
    pending: Arc<Pending>,
    room: Arc<Room>,
    dirty: DirtyList,
}

impl ChainAppender {
    /// Queues the event `bytes`, linked as `hash`, as the chain's event `index`; waits while
    /// the writer's queue is full. Indexes must follow each other. Fails once the writer
    /// thread is gone, since nothing appended then would be committed.
    pub async fn append(&self, index: u64, hash: &Hash, bytes: &[u8]) -> Result<(), StoreError> {
        if !self.try_append(index, hash, bytes)? {
            let cost = Room::cost_of(bytes.len());
            self.room.take(cost).await?;
            self.queue(index, hash, bytes, cost);
        }
        Ok(())
    }

    /// Queues the event as [`ChainAppender::append`] does if the writer's queue has room now;
    /// `false`, with nothing queued, if it is full.
    pub fn try_append(&self, index: u64, hash: &Hash, bytes: &[u8]) -> Result<bool, StoreError> {
        let cost = Room::cost_of(bytes.len());
        if self.room.is_closed() {
            return Err(writer_gone());
        }
        if !self.room.try_take(cost) {
            return Ok(false);
        }
        self.queue(index, hash, bytes, cost);
        Ok(true)
    }

    /// Adds an event whose room is taken to the chain's pending buffer.
    fn queue(&self, index: u64, hash: &Hash, bytes: &[u8], cost: u64) {
        let newly_listed = {
            let mut inner = locked(&self.pending.inner);
            if inner.data.is_empty() {
                inner.first = index;
                // Charged to the queue like the events, so that many chains' buffers cannot
                // hold memory the queue does not count.
                let reserve = inner.last_size.min(MAX_RESERVE);
                if reserve > 0 && self.room.try_take(reserve as u64) {
                    inner.data.reserve(reserve);
                    inner.cost += reserve as u64;
                }
            }
            let mut w = Writer {
                buf: std::mem::take(&mut inner.data),
            };
            w.hash(hash);
            w.bytes(bytes);
            inner.data = w.buf;
            inner.cost += cost;
            !std::mem::replace(&mut inner.listed, true)
        };
        if newly_listed {
            locked(&self.dirty).push(self.pending.clone());
        }
    }
}

impl Pending {
    /// What the writer takes from a listed chain: its registration and its events.
    fn take(&self, batch: &mut Vec<Command>) {
        let mut inner = locked(&self.inner);
        inner.listed = false;
        if let Some(info) = inner.register.take() {
            batch.push(Command::Register(*info));
        }
        if !inner.data.is_empty() {
            inner.last_size = inner.data.len();
            batch.push(Command::Unit {
                actor_id: self.actor_id.clone(),
                first: inner.first,
                data: std::mem::take(&mut inner.data),
                cost: std::mem::take(&mut inner.cost),
            });
        }
    }
}

/// The bytes of events queued for the writer at most (see [`ChainWriter::append`]).
pub const QUEUE_BYTES: u64 = 64 << 20;
/// What one queued event costs besides its bytes (the command and its bookkeeping).
const EVENT_OVERHEAD: u64 = 128;

/// The writer's queue, counted in bytes. Appenders wait for room; the writer gives room back
/// as it commits. So a slow or failing disk slows recording actors down instead of growing
/// memory without bound, and no event is ever dropped.
struct Room {
    used: Mutex<u64>,
    freed: std::sync::Condvar,
    freed_async: tokio::sync::Notify,
    /// Set when the writer thread has exited (or panicked): nothing will give room back, and
    /// nothing appended now would be committed.
    closed: std::sync::atomic::AtomicBool,
}

/// What an append says once the writer thread is gone.
fn writer_gone() -> StoreError {
    StoreError::WriterFailed("the writer thread exited".into())
}

impl Room {
    fn cost(event: &StoredEvent) -> u64 {
        Self::cost_of(event.bytes.len())
    }

    fn cost_of(bytes: usize) -> u64 {
        // One event larger than the whole queue still goes, alone.
        (bytes as u64 + EVENT_OVERHEAD).min(QUEUE_BYTES)
    }

    fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Marks the writer gone and wakes everyone waiting for room.
    fn close(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        let _guard = locked(&self.used);
        self.freed.notify_all();
        self.freed_async.notify_waiters();
    }

    /// Takes room without waiting, past the bound if need be (see `queue_blob`).
    fn force(&self, bytes: u64) {
        *locked(&self.used) += bytes;
    }

    fn try_take(&self, bytes: u64) -> bool {
        let mut used = locked(&self.used);
        if *used + bytes > QUEUE_BYTES {
            return false;
        }
        *used += bytes;
        true
    }

    fn take_blocking(&self, bytes: u64) -> Result<(), StoreError> {
        let mut used = locked(&self.used);
        while *used + bytes > QUEUE_BYTES {
            if self.is_closed() {
                return Err(writer_gone());
            }
            used = self
                .freed
                .wait(used)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        *used += bytes;
        Ok(())
    }

    async fn take(&self, bytes: u64) -> Result<(), StoreError> {
        loop {
            let freed = self.freed_async.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if self.is_closed() {
                return Err(writer_gone());
            }
            if self.try_take(bytes) {
                return Ok(());
            }
            freed.await;
        }
    }

    fn give_back(&self, bytes: u64) {
        if bytes == 0 {
            return;
        }
        *locked(&self.used) -= bytes;
        self.freed.notify_all();
        self.freed_async.notify_waiters();
    }
}

/// The writer's health, as [`ChainWriter::status`] reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriterStatus {
    /// Why the last commit failed, while commits fail (disk full, database busy). Appends
    /// still queue, up to [`QUEUE_BYTES`]; the writer retries with back-off.
    pub failing: Option<String>,
    /// Commits that failed and were retried since the writer opened.
    pub failed_commits: u64,
    /// Bytes waiting in the queue.
    pub queued_bytes: u64,
}

fn sqlite_err(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError::Sqlite {
        path: path.to_owned(),
        source,
    }
}

/// The path of the database in `data_dir`.
pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join(DB_FILE)
}

/// The tables of the current schema.
const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS chains (
        actor_id   TEXT PRIMARY KEY,
        name       TEXT NOT NULL,
        parent_id  TEXT,
        created_ms INTEGER NOT NULL,
        len        INTEGER NOT NULL,
        head       BLOB NOT NULL,
        signature  BLOB,
        manifest_dir TEXT,
        proof      BLOB
    );
    CREATE TABLE IF NOT EXISTS meta (
        key   TEXT PRIMARY KEY,
        value BLOB NOT NULL
    );
    CREATE TABLE IF NOT EXISTS segments (
        actor_id  TEXT NOT NULL,
        first_seq INTEGER NOT NULL,
        count     INTEGER NOT NULL,
        data      BLOB NOT NULL
    );
    CREATE UNIQUE INDEX IF NOT EXISTS segments_by_seq ON segments (actor_id, first_seq);";

/// Opens (creating if needed) the database for writing and sets up the schema, migrating a
/// database an older build wrote.
fn open_for_write(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(sqlite_err(path))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite_err(path))?;
    // A bigger page cache than SQLite's 2 MB default: the writer's inserts then find the
    // index pages they touch in memory instead of reading them back from the OS.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA cache_size = -16384;",
    )
    .map_err(sqlite_err(path))?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sqlite_err(path))?;
    match version {
        0 => conn
            .execute_batch(&format!(
                "{SCHEMA}; PRAGMA user_version = {SCHEMA_VERSION};"
            ))
            .map_err(sqlite_err(path))?,
        1 | 2 => migrate(&conn, version).map_err(sqlite_err(path))?,
        SCHEMA_VERSION => {}
        found => {
            return Err(StoreError::Schema {
                path: path.to_owned(),
                found,
            });
        }
    }
    Ok(conn)
}

/// Brings the database in `data_dir` to the current schema, in place and in one transaction
/// (`theater migrate`). Returns the version it had, if it was older; a current database is
/// left as it is.
pub fn migrate_data_dir(data_dir: &Path) -> Result<Option<i64>, StoreError> {
    let path = db_path(data_dir);
    if !path.exists() {
        return Err(StoreError::NoDatabase(data_dir.to_owned()));
    }
    let version: i64 = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| c.query_row("PRAGMA user_version", [], |r| r.get(0)))
        .map_err(sqlite_err(&path))?;
    open_for_write(&path)?;
    Ok((1..SCHEMA_VERSION).contains(&version).then_some(version))
}

/// Converts a version 1 or 2 database, in one transaction: its events move into segments,
/// and its heads keep the signatures they have (head signatures, which still verify).
fn migrate(conn: &Connection, from: i64) -> rusqlite::Result<()> {
    let tx = conn.unchecked_transaction()?;
    if from == 1 {
        // Version 1 had no signatures; its chains stay unsigned until they grow.
        tx.execute_batch(
            "ALTER TABLE chains ADD COLUMN signature BLOB;
             ALTER TABLE chains ADD COLUMN manifest_dir TEXT;",
        )?;
    }
    tx.execute_batch(&format!(
        "ALTER TABLE chains ADD COLUMN proof BLOB; {SCHEMA};"
    ))?;
    let mut moved = 0u64;
    {
        let mut select =
            tx.prepare("SELECT actor_id, seq, hash, data FROM events ORDER BY actor_id, seq")?;
        let mut insert = tx.prepare(INSERT_SEGMENT)?;
        let mut rows = select.query([])?;
        let mut open: Option<(String, Segment)> = None;
        while let Some(row) = rows.next()? {
            let actor_id: String = row.get(0)?;
            let seq = row.get::<_, i64>(1)? as u64;
            let event = stored_event_at(row, 2)?;
            if let Some((id, segment)) = &open
                && (*id != actor_id || segment.full() || segment.next() != seq)
            {
                let (id, segment) = open.take().expect("checked");
                segment.insert(&mut insert, &id)?;
            }
            open.get_or_insert_with(|| (actor_id, Segment::new(seq)))
                .1
                .push(&event.hash, &event.bytes);
            moved += 1;
        }
        if let Some((id, segment)) = open {
            segment.insert(&mut insert, &id)?;
        }
    }
    tx.execute_batch(&format!(
        "DROP TABLE events; PRAGMA user_version = {SCHEMA_VERSION};"
    ))?;
    tx.commit()?;
    tracing::info!(
        "migrated the chain database from schema version {from} to {SCHEMA_VERSION}: {moved} events now in segments"
    );
    Ok(())
}

const INSERT_SEGMENT: &str =
    "INSERT INTO segments (actor_id, first_seq, count, data) VALUES (?1, ?2, ?3, ?4)";

/// Consecutive events of one chain, stored as one row: per event, its link hash, a `u32`
/// length and its bytes (`docs/chain-format.md`, "Segments").
struct Segment {
    first_seq: u64,
    count: u64,
    data: Vec<u8>,
    last: Hash,
}

impl Segment {
    fn new(first_seq: u64) -> Segment {
        Segment {
            first_seq,
            count: 0,
            data: Vec::new(),
            last: Hash::GENESIS,
        }
    }

    fn next(&self) -> u64 {
        self.first_seq + self.count
    }

    fn full(&self) -> bool {
        self.count >= SEGMENT_EVENTS || self.data.len() >= SEGMENT_BYTES
    }

    fn push(&mut self, hash: &Hash, bytes: &[u8]) {
        let mut w = Writer {
            buf: std::mem::take(&mut self.data),
        };
        w.hash(hash);
        w.bytes(bytes);
        self.data = w.buf;
        self.count += 1;
        self.last = *hash;
    }

    /// The events framed in segment `data`, without copying, in order. What cannot be split
    /// into events ends the run as `Err` with the bytes from there on.
    fn framed(data: &[u8]) -> impl Iterator<Item = Result<(Hash, &[u8]), &[u8]>> {
        let mut r = Reader::new(data);
        std::iter::from_fn(move || {
            if r.remaining() == 0 {
                return None;
            }
            let at = data.len() - r.remaining();
            let event = (|| {
                Ok::<_, crate::DecodeError>((r.hash("event hash")?, r.byte_slice("event bytes")?))
            })();
            if event.is_err() {
                // Nothing after damage can be framed: end the run.
                r = Reader::new(&[]);
            }
            Some(event.map_err(|_| &data[at..]))
        })
    }

    fn insert(&self, stmt: &mut rusqlite::Statement<'_>, actor_id: &str) -> rusqlite::Result<()> {
        stmt.execute(params![
            actor_id,
            self.first_seq as i64,
            self.count as i64,
            &self.data
        ])?;
        Ok(())
    }

    /// The events of a stored segment, until `each` returns false. Damage never fails the
    /// read: whatever cannot be split into events is passed on as one [`damaged`] event, so
    /// that verification names it. Returns how many events the segment held, or `None` if it
    /// was damaged or `each` stopped early.
    fn decode(data: &[u8], mut each: impl FnMut(StoredEvent) -> bool) -> Option<u64> {
        let mut count = 0;
        for event in Self::framed(data) {
            let event = match event {
                Ok((hash, bytes)) => StoredEvent {
                    hash,
                    bytes: bytes.to_vec(),
                },
                Err(rest) => {
                    each(damaged(rest.to_vec()));
                    return None;
                }
            };
            count += 1;
            if !each(event) {
                return None;
            }
        }
        Some(count)
    }
}

/// What a reader passes on in place of stored bytes that are not a well-formed run of events:
/// an event with a hash no event links to, so verification names it.
fn damaged(bytes: Vec<u8>) -> StoredEvent {
    StoredEvent {
        hash: Hash([0xff; 32]),
        bytes,
    }
}

/// The single writer of a data dir's chains. It signs every head it commits with the data
/// dir's node key.
pub struct ChainWriter {
    tx: Option<mpsc::Sender<Command>>,
    /// Counts the writer's rounds (a batch committed, or nothing to commit).
    rounds: tokio::sync::watch::Sender<u64>,
    thread: Option<JoinHandle<()>>,
    status: Arc<Mutex<WriterStatus>>,
    room: Arc<Room>,
    /// A quota change for the writer to apply (`Some(None)`: lift the quota).
    quota: Arc<Mutex<Option<Option<u64>>>>,
    /// Set when the writer is dropped.
    closing: Arc<std::sync::atomic::AtomicBool>,
    dirty: DirtyList,
    blobs: BlobQueue,
    path: PathBuf,
    public_key: PublicKey,
}

impl ChainWriter {
    /// Opens `data_dir/theater.db`, creating the dir and the database if needed.
    pub fn open(data_dir: &Path) -> Result<ChainWriter, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::Io {
            path: data_dir.to_owned(),
            source,
        })?;
        let path = db_path(data_dir);
        let key = NodeKey::load_or_create(data_dir)?;
        let public_key = key.public();
        let conn = open_for_write(&path)?;
        theater_store::create_tables(&conn).map_err(sqlite_err(&path))?;
        conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('node_public_key', ?1)",
            [&public_key.0[..]],
        )
        .map_err(sqlite_err(&path))?;
        let (tx, rx) = mpsc::channel();
        let status = Arc::new(Mutex::new(WriterStatus::default()));
        let room = Arc::new(Room {
            used: Mutex::new(0),
            freed: Default::default(),
            freed_async: Default::default(),
            closed: Default::default(),
        });
        let rounds = tokio::sync::watch::Sender::new(0);
        let quota = Arc::new(Mutex::new(None));
        let closing = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let dirty = DirtyList::default();
        let blobs = BlobQueue::default();
        let thread = {
            let writer = WriterThread {
                dirty: dirty.clone(),
                blobs: blobs.clone(),
                quota: quota.clone(),
                closing: closing.clone(),
                rounds: rounds.clone(),
                conn,
                path: path.clone(),
                status: status.clone(),
                room: room.clone(),
                key,
            };
            std::thread::Builder::new()
                .name("theater-chain-writer".into())
                .spawn(move || writer.run(rx))
                .expect("spawning the chain writer thread")
        };
        Ok(ChainWriter {
            tx: Some(tx),
            rounds,
            thread: Some(thread),
            status,
            room,
            quota,
            closing,
            dirty,
            blobs,
            path,
            public_key,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The key that checks this writer's head signatures.
    pub fn public_key(&self) -> PublicKey {
        self.public_key
    }

    fn send(&self, command: Command) -> Result<(), StoreError> {
        let someone_waits = matches!(
            command,
            Command::Flush(_)
                | Command::Sync(_)
                | Command::Append { ack: Some(_), .. }
                | Command::Transact { .. }
        );
        self.tx
            .as_ref()
            .expect("sender lives until drop")
            .send(command)
            .map_err(|_| StoreError::WriterFailed("the writer thread exited".into()))?;
        if someone_waits {
            self.wake();
        }
        Ok(())
    }

    fn wake(&self) {
        if let Some(thread) = &self.thread {
            thread.thread().unpark();
        }
    }

    /// Records a new chain's row. Must come before its first append.
    pub fn register(&self, info: ChainInfo) -> Result<(), StoreError> {
        self.send(Command::Register(info))
    }

    /// The fast way to append one chain's events, as the runtime does: see [`ChainAppender`].
    /// `register`, if given, is the new chain's row, inserted before its first events.
    pub fn appender(&self, actor_id: Arc<str>, register: Option<ChainInfo>) -> ChainAppender {
        let pending = Arc::new(Pending {
            actor_id,
            inner: Mutex::new(PendingInner {
                listed: register.is_some(),
                register: register.map(Box::new),
                ..Default::default()
            }),
        });
        if locked(&pending.inner).listed {
            locked(&self.dirty).push(pending.clone());
        }
        ChainAppender {
            pending,
            room: self.room.clone(),
            dirty: self.dirty.clone(),
        }
    }

    /// Queues one event, blocking the thread while the queue is full. `ack`, if given, runs
    /// once the event is committed; with [`Durability::EveryEvent`] the commit is fsynced
    /// first. The runtime appends through a [`ChainAppender`] instead.
    pub fn append(
        &self,
        actor_id: Arc<str>,
        index: u64,
        event: StoredEvent,
        ack: Option<Ack>,
    ) -> Result<(), StoreError> {
        self.room.take_blocking(Room::cost(&event))?;
        self.queue(actor_id, index, event, ack)
    }

    fn queue(
        &self,
        actor_id: Arc<str>,
        index: u64,
        event: StoredEvent,
        ack: Option<Ack>,
    ) -> Result<(), StoreError> {
        let cost = Room::cost(&event);
        self.send(Command::Append {
            actor_id,
            index,
            event,
            ack,
        })
        .inspect_err(|_| self.room.give_back(cost))
    }

    /// Runs `op` in the writer's next transaction, so that a change to other tables of the
    /// database (the actor stores) never waits for the database's lock, and commits in order
    /// with the chains. `ack` gets the change's answer once it is committed: its own refusal,
    /// or the writer's failure. `bytes` is what it holds, counted against the queue's room but
    /// never waited for (the caller may be an async worker, and waits for `ack` anyway).
    pub fn transact(&self, op: TransactOp, bytes: u64, ack: Ack) -> Result<(), StoreError> {
        let cost = Room::cost_of(bytes as usize);
        if self.room.is_closed() {
            return Err(writer_gone());
        }
        self.room.force(cost);
        self.send(Command::Transact {
            op,
            outcome: None,
            cost,
            ack,
        })
        .inspect_err(|_| self.room.give_back(cost))
    }

    /// Returns once everything queued before this call is committed, without asking for an
    /// early commit: it waits for the writer's next rounds (a few milliseconds), or `limit`
    /// while commits fail.
    pub async fn committed_so_far(&self, limit: std::time::Duration) {
        let mut rounds = self.rounds.subscribe();
        let start = *rounds.borrow_and_update();
        // The round under way may have collected its batch before our events were queued; the
        // one after it has them.
        let _ = tokio::time::timeout(limit, rounds.wait_for(|r| *r >= start + 2)).await;
    }

    /// Caps the database at about `bytes` (SQLite's `max_page_count`); `None` lifts the cap.
    /// A commit past it fails as a full disk does: the writer reports it and retries until
    /// the cap is raised or room is made.
    pub fn set_quota(&self, bytes: Option<u64>) -> Result<(), StoreError> {
        // Beside the queue, not in it: a batch waiting for room must not hide it.
        *locked(&self.quota) = Some(bytes);
        self.wake();
        Ok(())
    }

    /// The writer's health: whether commits are failing, and how full its queue is.
    pub fn status(&self) -> WriterStatus {
        let mut status = locked(&self.status).clone();
        status.queued_bytes = *locked(&self.room.used);
        status
    }

    /// Runs `ack` once everything queued before it is committed.
    pub fn flush_with(&self, ack: Ack) -> Result<(), StoreError> {
        self.send(Command::Flush(ack))
    }

    /// Runs `ack` once everything queued before it is committed and fsynced.
    pub fn sync_with(&self, ack: Ack) -> Result<(), StoreError> {
        self.send(Command::Sync(ack))
    }

    /// Blocks until everything queued so far is committed.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.flush_within(None)
    }

    /// Blocks until everything queued so far is committed, or `limit` passes while commits
    /// fail (the error then says why, and what is not yet committed stays queued).
    pub fn flush_within(&self, limit: Option<std::time::Duration>) -> Result<(), StoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.flush_with(Box::new(move |r| {
            let _ = tx.send(r);
        }))?;
        let answer = match limit {
            None => rx.recv().ok(),
            Some(limit) => match rx.recv_timeout(limit) {
                Ok(answer) => Some(answer),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let status = self.status();
                    return Err(StoreError::WriterFailed(format!(
                        "{} bytes of events are not committed after {} ms: {}",
                        status.queued_bytes,
                        limit.as_millis(),
                        status.failing.unwrap_or_else(|| "the disk is slow".into())
                    )));
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => None,
            },
        };
        answer
            .ok_or_else(|| StoreError::WriterFailed("the writer thread exited".into()))?
            .map_err(StoreError::WriterFailed)
    }
}

/// The runtime's content store commits its blobs here, in the chains' transactions: it never
/// fights this writer for the database's lock, and a blob (an initial state, a snapshot, a
/// component) commits no later than the events recorded after it, which name it by hash.
impl theater_store::BlobWriter for ChainWriter {
    fn queue_blob(&self, hash: ContentHash, data: Arc<[u8]>) -> Result<(), String> {
        if self.room.is_closed() {
            return Err(writer_gone().to_string());
        }
        // Counted but never waited for: the caller may be an async worker, and blocking it
        // could stall the very tasks that free room. The event that names the blob comes
        // next and waits for room as every append does, so the queue overshoots by at most
        // one blob per actor spawning or snapshotting.
        self.room.force(Room::cost_of(data.len()));
        let mut blobs = locked(&self.blobs);
        blobs.unwritten.insert(hash, data.clone());
        blobs.new.push((hash, data));
        Ok(())
    }

    fn queued_blob(&self, hash: &ContentHash) -> Option<Arc<[u8]>> {
        locked(&self.blobs).unwritten.get(hash).cloned()
    }

    fn losses(&self) -> u64 {
        locked(&self.blobs).lost
    }
}

impl Drop for ChainWriter {
    /// Commits everything queued, then stops the thread.
    fn drop(&mut self) {
        drop(self.tx.take());
        // Told apart from the channel: a writer retrying a full batch reads no commands.
        self.closing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.wake();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The most commands folded into one transaction.
const MAX_BATCH: usize = 16 * 1024;
/// The first wait before a failed commit is retried; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: std::time::Duration = std::time::Duration::from_millis(10);
const MAX_BACKOFF: std::time::Duration = std::time::Duration::from_secs(1);
/// How long a writer being dropped keeps retrying a failing commit before it gives up.
const GIVE_UP_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

struct WriterThread {
    dirty: DirtyList,
    blobs: BlobQueue,
    quota: Arc<Mutex<Option<Option<u64>>>>,
    closing: Arc<std::sync::atomic::AtomicBool>,
    rounds: tokio::sync::watch::Sender<u64>,
    conn: Connection,
    path: PathBuf,
    status: Arc<Mutex<WriterStatus>>,
    room: Arc<Room>,
    key: NodeKey,
}

/// Closes the queue's room when the writer thread ends, however it ends.
struct CloseOnExit(Arc<Room>);

impl Drop for CloseOnExit {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl WriterThread {
    fn run(self, rx: mpsc::Receiver<Command>) {
        let _close = CloseOnExit(self.room.clone());
        let mut synchronous_full = false;
        let mut batch: Vec<Command> = Vec::with_capacity(256);
        let mut open = true;
        let mut backoff = FIRST_BACKOFF;
        let mut closed_at = None;
        loop {
            // Batched appends don't wake this thread; it looks every interval, or when woken
            // by a flush, an acknowledged append or the writer's drop.
            if batch.is_empty() {
                if !open {
                    return;
                }
                std::thread::park_timeout(BATCH_INTERVAL);
            }
            let quota = locked(&self.quota).take();
            if let Some(bytes) = quota {
                self.set_quota(bytes);
            }
            // Collected even while a batch waits for a retry: the queue's room bounds it.
            while open && batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(c) => batch.push(c),
                    Err(mpsc::TryRecvError::Empty) => break,
                    Err(mpsc::TryRecvError::Disconnected) => open = false,
                }
            }
            // After the channel: a flush seen there covers the appends made before it.
            self.take_dirty(&mut batch);
            // After the events: a blob queued before an event taken here commits with it.
            self.take_blobs(&mut batch);
            if batch.is_empty() {
                self.rounds.send_modify(|r| *r += 1);
                continue;
            }
            if batch.len() >= MAX_BATCH {
                // More may be queued: don't wait for the next interval.
                std::thread::current().unpark();
            }
            let wants_sync = batch
                .iter()
                .any(|c| matches!(c, Command::Append { ack: Some(_), .. } | Command::Sync(_)));
            if wants_sync != synchronous_full {
                let level = if wants_sync { "FULL" } else { "NORMAL" };
                let _ = self
                    .conn
                    .execute_batch(&format!("PRAGMA synchronous = {level}"));
                synchronous_full = wants_sync;
            }
            // An fsync happens only for a commit that writes: a sync whose events went out in
            // an earlier, unsynced commit must still write something, so that they are synced.
            let writes = batch.iter().any(|c| {
                matches!(
                    c,
                    Command::Append { .. }
                        | Command::Unit { .. }
                        | Command::Blob { .. }
                        | Command::Transact { .. }
                )
            });
            match commit_batch(&self.conn, &mut batch, &self.key, wants_sync && !writes) {
                Ok(()) => {
                    backoff = FIRST_BACKOFF;
                    self.committed(&mut batch);
                    self.rounds.send_modify(|r| *r += 1);
                }
                Err(e) if !transient(&e) => {
                    // Retrying cannot help (a bug, or a row SQLite refuses): say so loudly,
                    // fail whoever waits, and go on with the rest rather than wedge.
                    let message = format!("committing chains to {}: {e}", self.path.display());
                    self.failed(message.clone());
                    self.give_up(std::mem::take(&mut batch));
                }
                Err(e) => {
                    // The transaction rolled back as a whole: the same batch is retried.
                    let message = format!("committing chains to {}: {e}", self.path.display());
                    self.failed(message);
                    if self.closing.load(std::sync::atomic::Ordering::SeqCst) {
                        let since = *closed_at.get_or_insert_with(std::time::Instant::now);
                        if since.elapsed() > GIVE_UP_AFTER {
                            // This batch and whatever is still queued behind it.
                            batch.extend(rx.try_iter());
                            self.take_dirty(&mut batch);
                            self.take_blobs(&mut batch);
                            self.give_up(batch);
                            return;
                        }
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Moves every listed chain's registration and events into `batch`.
    fn take_dirty(&self, batch: &mut Vec<Command>) {
        for pending in std::mem::take(&mut *locked(&self.dirty)) {
            pending.take(batch);
        }
    }

    /// Moves the blobs queued since the last round into `batch`.
    fn take_blobs(&self, batch: &mut Vec<Command>) {
        let new = std::mem::take(&mut locked(&self.blobs).new);
        batch.extend(new.into_iter().map(|(hash, data)| Command::Blob {
            cost: Room::cost_of(data.len()),
            hash,
            data,
        }));
    }

    fn set_quota(&self, bytes: Option<u64>) {
        let pages = match bytes {
            None => u32::MAX as u64 - 1,
            Some(bytes) => {
                let page: u64 = self
                    .conn
                    .query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0))
                    .map_or(4096, |p| p.max(512) as u64);
                (bytes / page).max(1)
            }
        };
        // SQLite never sets it below the database's current size.
        let _ = self
            .conn
            .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()));
    }

    /// Acknowledges a committed batch and gives its room back.
    fn committed(&self, batch: &mut Vec<Command>) {
        let mut freed = 0;
        for command in batch.drain(..) {
            match command {
                Command::Append { ack, event, .. } => {
                    freed += Room::cost(&event);
                    if let Some(ack) = ack {
                        ack(Ok(()));
                    }
                }
                Command::Unit { cost, .. } => freed += cost,
                Command::Flush(ack) | Command::Sync(ack) => ack(Ok(())),
                Command::Register(_) => {}
                Command::Blob { hash, cost, .. } => {
                    freed += cost;
                    locked(&self.blobs).unwritten.remove(&hash);
                }
                Command::Transact {
                    outcome, cost, ack, ..
                } => {
                    freed += cost;
                    ack(outcome.unwrap_or(Ok(())));
                }
            }
        }
        self.room.give_back(freed);
        let mut status = locked(&self.status);
        if let Some(failure) = status.failing.take() {
            tracing::warn!(
                "recording resumed: chains commit to {} again (after: {failure})",
                self.path.display()
            );
        }
    }

    /// Notes a failed commit; the first of a run of failures is reported, once.
    fn failed(&self, message: String) {
        let mut status = locked(&self.status);
        status.failed_commits += 1;
        if status.failing.is_none() {
            tracing::error!(
                "{message}; retrying with back-off, and recording actors wait for room (nothing is dropped)"
            );
        }
        status.failing = Some(message);
    }

    /// The batch cannot be committed (the writer is closing on a disk that stays full, or the
    /// error is not one that passes): everyone waiting hears why, and its room is freed.
    fn give_up(&self, batch: Vec<Command>) {
        let why = locked(&self.status).failing.clone().unwrap_or_default();
        tracing::error!(
            "giving up: {} queued commands were not committed: {why}",
            batch.len()
        );
        let mut freed = 0;
        for command in batch {
            match command {
                Command::Append { ack, event, .. } => {
                    freed += Room::cost(&event);
                    if let Some(ack) = ack {
                        ack(Err(why.clone()));
                    }
                }
                Command::Unit { cost, .. } => freed += cost,
                Command::Flush(ack) | Command::Sync(ack) => ack(Err(why.clone())),
                Command::Register(_) => {}
                Command::Blob { hash, cost, .. } => {
                    freed += cost;
                    let mut blobs = locked(&self.blobs);
                    blobs.unwritten.remove(&hash);
                    // The content store stops trusting what it remembers putting.
                    blobs.lost += 1;
                }
                Command::Transact { cost, ack, .. } => {
                    freed += cost;
                    ack(Err(why.clone()));
                }
            }
        }
        self.room.give_back(freed);
    }
}

/// Whether a failed commit may succeed if retried: a full disk, a busy or locked database, an
/// I/O error. Anything else would fail the same way for ever.
fn transient(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode as C;
    matches!(
        e.sqlite_error_code(),
        Some(
            C::DiskFull
                | C::DatabaseBusy
                | C::DatabaseLocked
                | C::SystemIoFailure
                | C::CannotOpen
                | C::ReadOnly
                | C::OutOfMemory
        )
    )
}

fn commit_batch(
    conn: &Connection,
    batch: &mut [Command],
    key: &NodeKey,
    force_write: bool,
) -> rusqlite::Result<()> {
    let tx = conn.unchecked_transaction()?;
    if force_write {
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('last_sync_ms', ?1)",
            [std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64)],
        )?;
    }
    // Each chain's events in this batch become one segment (more past the segment limits),
    // in queue order: an actor's appends are queued in index order.
    let mut open: HashMap<&Arc<str>, Segment> = HashMap::new();
    {
        let mut insert_chain = tx.prepare_cached(
            "INSERT OR IGNORE INTO chains
                 (actor_id, name, parent_id, created_ms, len, head, manifest_dir)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        let mut insert_segment = tx.prepare_cached(INSERT_SEGMENT)?;
        let mut heads: Vec<(&str, ChainHead)> = Vec::new();
        for command in batch.iter_mut() {
            match command {
                Command::Register(info) => {
                    insert_chain.execute(params![
                        info.actor_id,
                        info.name,
                        info.parent,
                        info.created_ms as i64,
                        info.head.len as i64,
                        &info.head.head.0[..],
                        info.manifest_dir,
                    ])?;
                }
                Command::Append {
                    actor_id,
                    index,
                    event,
                    ..
                } => add_event(
                    &mut open,
                    &mut insert_segment,
                    actor_id,
                    *index,
                    &event.hash,
                    &event.bytes,
                )?,
                Command::Unit {
                    actor_id,
                    first,
                    data,
                    ..
                } => {
                    for (index, event) in (*first..).zip(Segment::framed(data)) {
                        let (hash, bytes) = event.expect("appender buffers are framed here");
                        add_event(
                            &mut open,
                            &mut insert_segment,
                            actor_id,
                            index,
                            &hash,
                            bytes,
                        )?;
                    }
                }
                Command::Blob { hash, data, .. } => theater_store::insert_blob(&tx, hash, data)?,
                Command::Transact { op, outcome, .. } => {
                    // A savepoint, so that a refusal undoes this change and nothing else.
                    tx.execute_batch("SAVEPOINT op")?;
                    let answer = match op(&tx) {
                        Ok(answer) => answer,
                        // Retried with the batch.
                        Err(e) if transient(&e) => return Err(e),
                        // Would fail again: this change alone is refused, not the events
                        // batched with it.
                        Err(e) => Err(format!("the database refused the change: {e}")),
                    };
                    let end = match answer {
                        Ok(()) => "RELEASE op",
                        Err(_) => "ROLLBACK TO op; RELEASE op",
                    };
                    tx.execute_batch(end)?;
                    *outcome = Some(answer);
                }
                Command::Flush(_) | Command::Sync(_) => {}
            }
        }
        for (actor_id, segment) in &open {
            segment.insert(&mut insert_segment, actor_id)?;
            heads.push((
                actor_id,
                ChainHead {
                    len: segment.next(),
                    head: segment.last,
                },
            ));
        }
        // Every head this commit moves is proven in the same transaction, by one signature
        // of them all, so the stored head, whatever a crash leaves, is always a signed one.
        heads.sort_unstable_by_key(|(id, _)| *id);
        let proofs = sign_commit(key, &heads);
        let mut update_head = tx.prepare_cached(
            "UPDATE chains SET len = ?2, head = ?3, signature = ?4, proof = ?5 WHERE actor_id = ?1",
        )?;
        for ((actor_id, head), proof) in heads.iter().zip(proofs) {
            let (signature, path) = proof_columns(&proof);
            update_head.execute(params![
                actor_id,
                head.len as i64,
                &head.head.0[..],
                &signature.0[..],
                path,
            ])?;
        }
    }
    tx.commit()
}

/// Adds event `index` of a chain to its segment in this commit, first inserting that segment
/// if it is full or the event does not follow it.
fn add_event<'a>(
    open: &mut HashMap<&'a Arc<str>, Segment>,
    insert: &mut rusqlite::Statement<'_>,
    actor_id: &'a Arc<str>,
    index: u64,
    hash: &Hash,
    bytes: &[u8],
) -> rusqlite::Result<()> {
    let segment = open.entry(actor_id).or_insert_with(|| Segment::new(index));
    if segment.full() || segment.next() != index {
        std::mem::replace(segment, Segment::new(index)).insert(insert, actor_id)?;
    }
    segment.push(hash, bytes);
    Ok(())
}

/// A head proof as the `signature` and `proof` columns keep it: a head signature has no path
/// (NULL); a commit proof's path is its steps, encoded as in export files.
fn proof_columns(proof: &HeadProof) -> (Signature, Option<Vec<u8>>) {
    match proof {
        HeadProof::Head(signature) => (*signature, None),
        HeadProof::Commit { signature, path } => {
            let mut w = Writer::default();
            HeadProof::encode_path(path, &mut w);
            (*signature, Some(w.buf))
        }
    }
}

/// A stored hash; one of the wrong length can never match, and `verify` reports it.
fn stored_hash(bytes: Vec<u8>) -> Hash {
    Hash(bytes.try_into().unwrap_or([0xff; 32]))
}

/// An event row's `hash, data` columns, from column `at` (the schema 2 layout, migrated).
fn stored_event_at(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<StoredEvent> {
    Ok(StoredEvent {
        hash: stored_hash(raw_bytes(row, at)?),
        bytes: raw_bytes(row, at + 1)?,
    })
}

/// The guard, whether or not an earlier holder panicked: every critical section here leaves
/// its data consistent, so a poisoned lock's data is still good.
fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A column's bytes whatever SQLite type it holds, so that a damaged row reaches the verifier
/// (which names it) instead of failing the read.
fn raw_bytes(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Vec<u8>> {
    use rusqlite::types::ValueRef;
    Ok(match row.get_ref(index)? {
        ValueRef::Blob(b) | ValueRef::Text(b) => b.to_vec(),
        ValueRef::Integer(i) => i.to_le_bytes().to_vec(),
        ValueRef::Real(r) => r.to_le_bytes().to_vec(),
        ValueRef::Null => Vec::new(),
    })
}

/// The `chains` columns [`ChainReader`] selects.
const CHAIN_COLUMNS: &str =
    "actor_id, name, parent_id, created_ms, len, head, signature, manifest_dir, proof";

/// Read access to a data dir's chains. Safe to use while another process writes.
pub struct ChainReader {
    conn: Connection,
    path: PathBuf,
}

impl ChainReader {
    pub fn open(data_dir: &Path) -> Result<ChainReader, StoreError> {
        let path = db_path(data_dir);
        if !path.exists() {
            return Err(StoreError::NoDatabase(data_dir.to_owned()));
        }
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sqlite_err(&path))?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite_err(&path))?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(sqlite_err(&path))?;
        match version {
            SCHEMA_VERSION => Ok(ChainReader { conn, path }),
            // A writer that has not committed its schema yet: nothing to read.
            0 => Err(StoreError::NoDatabase(data_dir.to_owned())),
            1 | 2 => Err(StoreError::OldSchema {
                path,
                found: version,
            }),
            found => Err(StoreError::Schema { path, found }),
        }
    }

    fn info_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ChainInfo> {
        let head = raw_bytes(row, 5)?;
        let signature = match row.get_ref(6)? {
            rusqlite::types::ValueRef::Null => None,
            _ => {
                // A signature of the wrong length or a damaged path can never verify; verify
                // reports it.
                let signature = Signature(raw_bytes(row, 6)?.try_into().unwrap_or([0; 64]));
                Some(match row.get_ref(8)? {
                    rusqlite::types::ValueRef::Null => HeadProof::Head(signature),
                    _ => {
                        let bytes = raw_bytes(row, 8)?;
                        let mut r = Reader::new(&bytes);
                        let path = HeadProof::decode_path(&mut r, bytes.len() / 33)
                            .ok()
                            .filter(|_| bytes.len() % 33 == 0)
                            .unwrap_or_else(|| {
                                vec![crate::MerkleStep {
                                    sibling: Hash([0xff; 32]),
                                    sibling_is_left: false,
                                }]
                            });
                        HeadProof::Commit { signature, path }
                    }
                })
            }
        };
        Ok(ChainInfo {
            signature,
            manifest_dir: row.get(7)?,
            actor_id: row.get(0)?,
            name: row.get(1)?,
            parent: row.get(2)?,
            created_ms: row.get::<_, i64>(3)? as u64,
            head: ChainHead {
                len: row.get::<_, i64>(4)? as u64,
                head: stored_hash(head),
            },
        })
    }

    /// The public key of the node that writes this data dir's chains, once one has.
    pub fn node_key(&self) -> Result<Option<PublicKey>, StoreError> {
        let value: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'node_public_key'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(sqlite_err(&self.path))?;
        Ok(value.and_then(|v| v.try_into().ok()).map(PublicKey))
    }

    /// Every chain, oldest first.
    pub fn chains(&self) -> Result<Vec<ChainInfo>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {CHAIN_COLUMNS} FROM chains ORDER BY created_ms, actor_id"
            ))
            .map_err(sqlite_err(&self.path))?;
        let rows = stmt
            .query_map([], Self::info_from_row)
            .map_err(sqlite_err(&self.path))?;
        rows.collect::<Result<_, _>>()
            .map_err(sqlite_err(&self.path))
    }

    /// The chain whose actor id is `id`, or the only one that starts with `id`.
    pub fn resolve(&self, id: &str) -> Result<ChainInfo, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {CHAIN_COLUMNS} FROM chains WHERE substr(actor_id, 1, length(?1)) = ?1 LIMIT 2"
            ))
            .map_err(sqlite_err(&self.path))?;
        let found: Vec<ChainInfo> = stmt
            .query_map([id], Self::info_from_row)
            .map_err(sqlite_err(&self.path))?
            .collect::<Result<_, _>>()
            .map_err(sqlite_err(&self.path))?;
        if let Some(exact) = found.iter().find(|c| c.actor_id == id) {
            return Ok(exact.clone());
        }
        match found.len() {
            0 => Err(StoreError::UnknownActor(id.to_owned())),
            1 => Ok(found.into_iter().next().unwrap()),
            count => Err(StoreError::AmbiguousActor {
                prefix: id.to_owned(),
                count,
            }),
        }
    }

    /// Up to `limit` committed events of a chain from index `from` on, with the chain's
    /// committed length, read in one snapshot. Cheap for a long chain: only the range is read,
    /// and reading stops once the events read hold `max_bytes` (the event that crosses it
    /// included, so at least one is returned).
    pub fn events(
        &self,
        actor_id: &str,
        from: u64,
        limit: u64,
        max_bytes: u64,
    ) -> Result<(u64, Vec<StoredEvent>), StoreError> {
        let fail = sqlite_err(&self.path);
        let tx = self.conn.unchecked_transaction().map_err(&fail)?;
        let len: i64 = tx
            .query_row(
                "SELECT len FROM chains WHERE actor_id = ?1",
                [actor_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(&fail)?
            .ok_or_else(|| StoreError::UnknownActor(actor_id.to_owned()))?;
        let (mut events, mut bytes) = (Vec::new(), 0u64);
        let end = from.saturating_add(limit);
        Self::each_event(&tx, actor_id, from, |index, event| {
            if index >= end || bytes >= max_bytes {
                return false;
            }
            bytes += event.bytes.len() as u64;
            events.push(event);
            true
        })
        .map_err(&fail)?;
        Ok((len.max(0) as u64, events))
    }

    /// The hash of a chain's committed event `index`, if there is one.
    pub fn hash_at(&self, actor_id: &str, index: u64) -> Result<Option<Hash>, StoreError> {
        let mut found = None;
        Self::each_event(&self.conn, actor_id, index, |at, event| {
            if at == index {
                found = Some(event.hash);
            }
            false
        })
        .map_err(sqlite_err(&self.path))?;
        Ok(found)
    }

    /// Calls `each` with the index and the event of a chain's committed events from `from` on,
    /// in order, until it returns false. Only the segments that hold them are read.
    fn each_event(
        conn: &Connection,
        actor_id: &str,
        from: u64,
        mut each: impl FnMut(u64, StoredEvent) -> bool,
    ) -> rusqlite::Result<()> {
        // `from` beyond i64 (which `as` would wrap to a negative, selecting everything)
        // selects nothing, as an index past the end should.
        let Ok(from) = i64::try_from(from) else {
            return Ok(());
        };
        // The segment holding `from` starts at or before it: the last such, then the rest.
        let mut stmt = conn.prepare_cached(
            "SELECT first_seq, data, count FROM segments WHERE actor_id = ?1 AND first_seq >= coalesce(
                 (SELECT max(first_seq) FROM segments WHERE actor_id = ?1 AND first_seq <= ?2), 0)
             ORDER BY first_seq",
        )?;
        let mut rows = stmt.query(params![actor_id, from])?;
        let mut going = true;
        // Where the next segment must start: segments follow each other without gaps or
        // overlaps, and the first starts at 0, or a tampered `first_seq` or `count` would move
        // events to other indexes for a ranged read while the whole chain still verifies.
        let mut expected: Option<u64> = (from == 0).then_some(0);
        while going && let Some(row) = rows.next()? {
            let first: i64 = row.get(0)?;
            let count: i64 = row.get(2)?;
            let mut index = expected.unwrap_or(first.max(0) as u64);
            if first < 0 || expected.is_some_and(|e| e != first as u64) {
                each(index, damaged(Vec::new()));
                return Ok(());
            }
            let data = raw_bytes(row, 1)?;
            let held = Segment::decode(&data, |event| {
                if index >= from as u64 {
                    going = each(index, event);
                }
                index += 1;
                going
            });
            match held {
                Some(held) if i64::try_from(held) == Ok(count) => {}
                // Damaged: `decode` passed the damage on. Stopped early: nothing to check.
                None => return Ok(()),
                Some(_) => {
                    each(index, damaged(Vec::new()));
                    return Ok(());
                }
            }
            expected = Some(index);
        }
        Ok(())
    }

    /// The chain's row and its committed events, read in one snapshot.
    pub fn chain(&self, actor_id: &str) -> Result<(ChainInfo, Vec<StoredEvent>), StoreError> {
        self.chain_from(actor_id, 0)
    }

    /// The chain's row and its committed events from index `from` on, read in one snapshot.
    pub fn chain_from(
        &self,
        actor_id: &str,
        from: u64,
    ) -> Result<(ChainInfo, Vec<StoredEvent>), StoreError> {
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(sqlite_err(&self.path))?;
        let info = tx
            .query_row(
                &format!("SELECT {CHAIN_COLUMNS} FROM chains WHERE actor_id = ?1"),
                [actor_id],
                Self::info_from_row,
            )
            .optional()
            .map_err(sqlite_err(&self.path))?
            .ok_or_else(|| StoreError::UnknownActor(actor_id.to_owned()))?;
        let mut events = Vec::new();
        Self::each_event(&tx, actor_id, from, |_, event| {
            events.push(event);
            true
        })
        .map_err(sqlite_err(&self.path))?;
        Ok((info, events))
    }
}

#[cfg(test)]
mod tests {
    /// Every live chain keeps its pending record: a million actors keep a million. Raise this
    /// only on purpose.
    #[test]
    fn a_chains_pending_record_stays_small() {
        let size = std::mem::size_of::<super::Pending>();
        assert!(size <= 88, "Pending: {size}");
    }
}
