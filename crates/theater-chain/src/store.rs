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
use crate::hash::Hash;
use crate::sign::{KeyError, NodeKey, PublicKey, Signature};

/// The database file inside a data dir.
pub const DB_FILE: &str = "theater.db";
/// Version 2 added head signatures (`chains.signature`) and the `meta` table.
const SCHEMA_VERSION: i64 = 2;

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
        "database {path} has schema version {found}; this build reads version {SCHEMA_VERSION}"
    )]
    Schema { path: PathBuf, found: i64 },
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
    /// The node's signature of `head` (none for a chain written before signing existed).
    pub signature: Option<Signature>,
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
    Flush(Ack),
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
}

impl Room {
    fn cost(event: &StoredEvent) -> u64 {
        // One event larger than the whole queue still goes, alone.
        (event.bytes.len() as u64 + EVENT_OVERHEAD).min(QUEUE_BYTES)
    }

    fn try_take(&self, bytes: u64) -> bool {
        let mut used = locked(&self.used);
        if *used + bytes > QUEUE_BYTES {
            return false;
        }
        *used += bytes;
        true
    }

    fn take_blocking(&self, bytes: u64) {
        let mut used = locked(&self.used);
        while *used + bytes > QUEUE_BYTES {
            used = self
                .freed
                .wait(used)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        *used += bytes;
    }

    async fn take(&self, bytes: u64) {
        loop {
            let freed = self.freed_async.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if self.try_take(bytes) {
                return;
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

/// Opens (creating if needed) the database for writing and sets up the schema.
fn open_for_write(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(sqlite_err(path))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite_err(path))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         CREATE TABLE IF NOT EXISTS chains (
             actor_id   TEXT PRIMARY KEY,
             name       TEXT NOT NULL,
             parent_id  TEXT,
             created_ms INTEGER NOT NULL,
             len        INTEGER NOT NULL,
             head       BLOB NOT NULL,
             signature  BLOB,
             manifest_dir TEXT
         );
         CREATE TABLE IF NOT EXISTS meta (
             key   TEXT PRIMARY KEY,
             value BLOB NOT NULL
         );
         CREATE TABLE IF NOT EXISTS events (
             actor_id TEXT NOT NULL,
             seq      INTEGER NOT NULL,
             hash     BLOB NOT NULL,
             data     BLOB NOT NULL,
             PRIMARY KEY (actor_id, seq)
         ) WITHOUT ROWID;",
    )
    .map_err(sqlite_err(path))?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sqlite_err(path))?;
    match version {
        0 => conn
            .execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
            .map_err(sqlite_err(path))?,
        // Version 1 had no signatures; its chains stay unsigned until they grow.
        1 => conn
            .execute_batch(&format!(
                "ALTER TABLE chains ADD COLUMN signature BLOB;
                 ALTER TABLE chains ADD COLUMN manifest_dir TEXT;
                 PRAGMA user_version = {SCHEMA_VERSION};"
            ))
            .map_err(sqlite_err(path))?,
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
        });
        let rounds = tokio::sync::watch::Sender::new(0);
        let quota = Arc::new(Mutex::new(None));
        let closing = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = {
            let writer = WriterThread {
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
            Command::Flush(_) | Command::Append { ack: Some(_), .. }
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

    /// Queues one event, blocking the thread while the queue is full. `ack`, if given, runs
    /// once the event is committed; with [`Durability::EveryEvent`] the commit is fsynced
    /// first. Async callers use [`ChainWriter::append_async`].
    pub fn append(
        &self,
        actor_id: Arc<str>,
        index: u64,
        event: StoredEvent,
        ack: Option<Ack>,
    ) -> Result<(), StoreError> {
        self.room.take_blocking(Room::cost(&event));
        self.queue(actor_id, index, event, ack)
    }

    /// [`ChainWriter::append`] that waits for room in the queue without blocking the thread.
    pub async fn append_async(
        &self,
        actor_id: Arc<str>,
        index: u64,
        event: StoredEvent,
        ack: Option<Ack>,
    ) -> Result<(), StoreError> {
        let cost = Room::cost(&event);
        if !self.room.try_take(cost) {
            self.room.take(cost).await;
        }
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
    quota: Arc<Mutex<Option<Option<u64>>>>,
    closing: Arc<std::sync::atomic::AtomicBool>,
    rounds: tokio::sync::watch::Sender<u64>,
    conn: Connection,
    path: PathBuf,
    status: Arc<Mutex<WriterStatus>>,
    room: Arc<Room>,
    key: NodeKey,
}

impl WriterThread {
    fn run(self, rx: mpsc::Receiver<Command>) {
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
                .any(|c| matches!(c, Command::Append { ack: Some(_), .. }));
            if wants_sync != synchronous_full {
                let level = if wants_sync { "FULL" } else { "NORMAL" };
                let _ = self
                    .conn
                    .execute_batch(&format!("PRAGMA synchronous = {level}"));
                synchronous_full = wants_sync;
            }
            match commit_batch(&self.conn, &batch, &self.key) {
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
                Command::Flush(ack) => ack(Ok(())),
                Command::Register(_) => {}
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
        for command in batch {
            match command {
                Command::Append { ack: Some(ack), .. } | Command::Flush(ack) => {
                    ack(Err(why.clone()))
                }
                _ => {}
            }
        }
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

fn commit_batch(conn: &Connection, batch: &[Command], key: &NodeKey) -> rusqlite::Result<()> {
    let tx = conn.unchecked_transaction()?;
    let mut heads: HashMap<Arc<str>, ChainHead> = HashMap::new();
    {
        let mut insert_chain = tx.prepare_cached(
            "INSERT OR IGNORE INTO chains
                 (actor_id, name, parent_id, created_ms, len, head, manifest_dir)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        let mut insert_event = tx.prepare_cached(
            "INSERT INTO events (actor_id, seq, hash, data) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for command in batch {
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
                } => {
                    insert_event.execute(params![
                        &**actor_id,
                        *index as i64,
                        &event.hash.0[..],
                        &event.bytes,
                    ])?;
                    heads.insert(
                        actor_id.clone(),
                        ChainHead {
                            len: index + 1,
                            head: event.hash,
                        },
                    );
                }
                Command::Flush(_) => {}
            }
        }
        // Every head this commit moves is signed in the same transaction, so the stored head,
        // whatever a crash leaves, is always a signed one.
        let mut update_head = tx.prepare_cached(
            "UPDATE chains SET len = ?2, head = ?3, signature = ?4 WHERE actor_id = ?1",
        )?;
        for (actor_id, head) in &heads {
            let signature = key.sign_head(actor_id, head);
            update_head.execute(params![
                &**actor_id,
                head.len as i64,
                &head.head.0[..],
                &signature.0[..]
            ])?;
        }
    }
    tx.commit()
}

/// A stored hash; one of the wrong length can never match, and `verify` reports it.
fn stored_hash(bytes: Vec<u8>) -> Hash {
    Hash(bytes.try_into().unwrap_or([0xff; 32]))
}

/// An event row selected as `hash, data`.
fn stored_event(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredEvent> {
    Ok(StoredEvent {
        hash: stored_hash(raw_bytes(row, 0)?),
        bytes: raw_bytes(row, 1)?,
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

/// Read access to a data dir's chains. Safe to use while another process writes.
pub struct ChainReader {
    conn: Connection,
    path: PathBuf,
    /// The `chains` columns to select: schema 1 databases have no signatures.
    columns: &'static str,
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
        let columns = match version {
            1 => "actor_id, name, parent_id, created_ms, len, head, NULL, NULL",
            0 | SCHEMA_VERSION => {
                "actor_id, name, parent_id, created_ms, len, head, signature, manifest_dir"
            }
            found => return Err(StoreError::Schema { path, found }),
        };
        Ok(ChainReader {
            conn,
            path,
            columns,
        })
    }

    fn info_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ChainInfo> {
        let head = raw_bytes(row, 5)?;
        let signature = match row.get_ref(6)? {
            rusqlite::types::ValueRef::Null => None,
            // A signature of the wrong length can never verify; verify reports it.
            _ => Some(Signature(raw_bytes(row, 6)?.try_into().unwrap_or([0; 64]))),
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
        if self.columns.ends_with("NULL, NULL") {
            return Ok(None);
        }
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
                "SELECT {} FROM chains ORDER BY created_ms, actor_id",
                self.columns
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
                "SELECT {} FROM chains WHERE substr(actor_id, 1, length(?1)) = ?1 LIMIT 2",
                self.columns
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
        let mut stmt = tx
            .prepare_cached(
                "SELECT hash, data FROM events WHERE actor_id = ?1 AND seq >= ?2 AND seq < ?3 ORDER BY seq",
            )
            .map_err(&fail)?;
        let from = i64::try_from(from).unwrap_or(i64::MAX);
        let end = from.saturating_add(i64::try_from(limit).unwrap_or(i64::MAX));
        let mut rows = stmt.query(params![actor_id, from, end]).map_err(&fail)?;
        let (mut events, mut bytes) = (Vec::new(), 0u64);
        while bytes < max_bytes
            && let Some(row) = rows.next().map_err(&fail)?
        {
            let event = stored_event(row).map_err(&fail)?;
            bytes += event.bytes.len() as u64;
            events.push(event);
        }
        Ok((len.max(0) as u64, events))
    }

    /// The hash of a chain's committed event `index`, if there is one.
    pub fn hash_at(&self, actor_id: &str, index: u64) -> Result<Option<Hash>, StoreError> {
        let Ok(index) = i64::try_from(index) else {
            return Ok(None);
        };
        let hash: Option<Vec<u8>> = self
            .conn
            .prepare_cached("SELECT hash FROM events WHERE actor_id = ?1 AND seq = ?2")
            .and_then(|mut stmt| {
                stmt.query_row(params![actor_id, index], |r| r.get(0))
                    .optional()
            })
            .map_err(sqlite_err(&self.path))?;
        Ok(hash.map(stored_hash))
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
                &format!("SELECT {} FROM chains WHERE actor_id = ?1", self.columns),
                [actor_id],
                Self::info_from_row,
            )
            .optional()
            .map_err(sqlite_err(&self.path))?
            .ok_or_else(|| StoreError::UnknownActor(actor_id.to_owned()))?;
        let events = {
            let mut stmt = tx
                .prepare(
                    "SELECT hash, data FROM events WHERE actor_id = ?1 AND seq >= ?2 ORDER BY seq",
                )
                .map_err(sqlite_err(&self.path))?;
            // `from` beyond i64 (which `as` would wrap to a negative, selecting everything)
            // selects nothing, as an index past the end should.
            let from = i64::try_from(from).unwrap_or(i64::MAX);
            stmt.query_map(params![actor_id, from], stored_event)
                .map_err(sqlite_err(&self.path))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sqlite_err(&self.path))?
        };
        Ok((info, events))
    }
}
