//! Theater's content store: blobs kept under their BLAKE3 hash, plus named labels pointing at
//! them. The runtime keeps every component it runs here, so a chain (which names its component
//! by hash) can be replayed after the files on disk changed.
//!
//! The store lives in the data dir's one database (`theater.db`), in tables of its own.
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! let store = theater_store::ContentStore::open(dir.path()).unwrap();
//! let hash = store.put(b"hello").unwrap();
//! assert_eq!(store.get(&hash).unwrap().as_deref(), Some(&b"hello"[..]));
//! store.set_label("greeting", &hash).unwrap();
//! assert_eq!(store.label("greeting").unwrap(), Some(hash));
//! ```

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};

pub mod stores;

/// A blob's BLAKE3 hash.
pub type ContentHash = [u8; 32];

/// The database file shared with the chain store.
pub const DB_FILE: &str = "theater.db";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("content store {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// A blob refused: over [`MAX_BLOB_BYTES`], or by the database's writer (see
    /// [`BlobWriter`]).
    #[error("content store {path}: {message}")]
    Writer { path: PathBuf, message: String },
}

/// The tables this store keeps in the shared database.
const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS blobs (
        hash BLOB PRIMARY KEY,
        data BLOB NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS labels (
        label TEXT PRIMARY KEY,
        hash  BLOB NOT NULL
    ) WITHOUT ROWID;";

/// Creates this store's tables in `conn` if they are missing. For a writer that commits blobs
/// on the store's behalf (see [`BlobWriter`]).
pub fn create_tables(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(SCHEMA)?;
    conn.execute_batch(stores::SCHEMA)
}

/// Stores one blob within a writer's transaction; a blob already there is left as it is.
pub fn insert_blob(conn: &Connection, hash: &ContentHash, data: &[u8]) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT OR IGNORE INTO blobs (hash, data) VALUES (?1, ?2)")?
        .execute(params![&hash[..], data])
        .map(drop)
}

/// The database's one writer, when another component owns it (the runtime's chain writer).
/// The store then hands new blobs to it instead of writing them itself: a caller never waits
/// for the database's write lock (SQLite's busy handler sleeps the thread for milliseconds,
/// and the runtime calls `put` on its async workers), and a blob commits no later than the
/// events recorded after it.
pub trait BlobWriter: Send + Sync {
    /// Queues `data` under `hash`; it commits with the writer's next batch.
    fn queue_blob(&self, hash: ContentHash, data: Arc<[u8]>) -> Result<(), String>;
    /// A blob queued but not committed yet, so that a reader finds what was just put.
    fn queued_blob(&self, hash: &ContentHash) -> Option<Arc<[u8]>>;
    /// Counts the blobs the writer gave up on (a commit that cannot succeed): when it
    /// changes, the store forgets which hashes it put lately and checks the database again.
    fn losses(&self) -> u64;
}

/// The largest blob the store takes, well under SQLite's own limit (10^9 bytes by default),
/// which would fail the writer's whole transaction. Components (256 MiB) and `init_state`
/// files (64 MiB) are smaller; a state this large is refused with this error.
pub const MAX_BLOB_BYTES: usize = 512 << 20;

/// Blobs by hash and labels, in `DATA_DIR/theater.db`.
pub struct ContentStore {
    conn: Mutex<Connection>,
    path: PathBuf,
    /// Where new blobs go, if the database has another writer; else `conn` writes them.
    writer: Option<Arc<dyn BlobWriter>>,
    /// The writer's [`BlobWriter::losses`] when `recent` was last trusted.
    losses_seen: std::sync::atomic::AtomicU64,
    /// Hashes this store put or found lately. Blobs are never deleted, so a hash here needs no
    /// query: a supervisor spawning many children with one initial state stores it once.
    recent: Mutex<HashSet<ContentHash>>,
}

/// Hashes kept in [`ContentStore`]'s `recent`; past this it starts over.
const MAX_RECENT: usize = 4096;

impl ContentStore {
    /// Opens the store in `data_dir`, creating the dir, database and tables if needed.
    pub fn open(data_dir: &Path) -> Result<ContentStore, StoreError> {
        let path = data_dir.join(DB_FILE);
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        if let Err(e) = std::fs::create_dir_all(data_dir) {
            return Err(err(rusqlite::Error::ToSqlConversionFailure(Box::new(e))));
        }
        let conn = Connection::open(&path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
            .and_then(|()| create_tables(&conn))
            .map_err(err)?;
        Ok(ContentStore {
            conn: Mutex::new(conn),
            path,
            writer: None,
            losses_seen: Default::default(),
            recent: Mutex::default(),
        })
    }

    /// Sends new blobs through `writer`, the database's one writer, from now on.
    pub fn writing_through(mut self, writer: Arc<dyn BlobWriter>) -> ContentStore {
        self.writer = Some(writer);
        self
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Stores `data` (once; storing the same bytes again is free) and returns its hash. With
    /// a [`BlobWriter`], the blob is queued and this never waits for the database's lock.
    pub fn put(&self, data: &[u8]) -> Result<ContentHash, StoreError> {
        if data.len() > MAX_BLOB_BYTES {
            return Err(StoreError::Writer {
                path: self.path.clone(),
                message: format!(
                    "a blob of {} bytes is over the content store's limit of {MAX_BLOB_BYTES}",
                    data.len()
                ),
            });
        }
        let hash = *blake3::hash(data).as_bytes();
        if let Some(writer) = &self.writer {
            let losses = writer.losses();
            let seen = &self.losses_seen;
            if seen.swap(losses, std::sync::atomic::Ordering::Relaxed) != losses {
                locked(&self.recent).clear();
            }
        }
        if locked(&self.recent).contains(&hash) {
            return Ok(hash);
        }
        // A read: in WAL mode it never waits for the writer.
        if !self.contains(&hash)? {
            match &self.writer {
                Some(writer) => {
                    writer
                        .queue_blob(hash, data.into())
                        .map_err(|message| StoreError::Writer {
                            path: self.path.clone(),
                            message,
                        })?
                }
                None => insert_blob(&locked(&self.conn), &hash, data).map_err(|e| self.err(e))?,
            }
        }
        let mut recent = locked(&self.recent);
        if recent.len() >= MAX_RECENT {
            recent.clear();
        }
        recent.insert(hash);
        Ok(hash)
    }

    pub fn get(&self, hash: &ContentHash) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(queued) = self.writer.as_ref().and_then(|w| w.queued_blob(hash)) {
            return Ok(Some(queued.to_vec()));
        }
        let conn = locked(&self.conn);
        conn.prepare_cached("SELECT data FROM blobs WHERE hash = ?1")
            .and_then(|mut s| s.query_row([&hash[..]], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))
    }

    pub fn contains(&self, hash: &ContentHash) -> Result<bool, StoreError> {
        if self
            .writer
            .as_ref()
            .is_some_and(|w| w.queued_blob(hash).is_some())
        {
            return Ok(true);
        }
        let conn = locked(&self.conn);
        conn.prepare_cached("SELECT 1 FROM blobs WHERE hash = ?1")
            .and_then(|mut s| s.exists([&hash[..]]))
            .map_err(|e| self.err(e))
    }

    /// Points `label` at `hash`, replacing what it pointed at.
    pub fn set_label(&self, label: &str, hash: &ContentHash) -> Result<(), StoreError> {
        let conn = locked(&self.conn);
        conn.execute(
            "INSERT INTO labels (label, hash) VALUES (?1, ?2)
             ON CONFLICT (label) DO UPDATE SET hash = excluded.hash",
            params![label, &hash[..]],
        )
        .map(drop)
        .map_err(|e| self.err(e))
    }

    pub fn label(&self, label: &str) -> Result<Option<ContentHash>, StoreError> {
        let conn = locked(&self.conn);
        let found: Option<Vec<u8>> = conn
            .query_row("SELECT hash FROM labels WHERE label = ?1", [label], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(found.and_then(|h| h.try_into().ok()))
    }

    /// All labels, sorted.
    pub fn labels(&self) -> Result<Vec<String>, StoreError> {
        let conn = locked(&self.conn);
        let mut stmt = conn
            .prepare("SELECT label FROM labels ORDER BY label")
            .map_err(|e| self.err(e))?;
        stmt.query_map([], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.err(e))
    }
}

/// The guard, whether or not an earlier holder panicked (a panic elsewhere in the runtime
/// must not wedge the content store; its critical sections leave the data consistent).
fn locked<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let hash = ContentStore::open(dir.path()).unwrap().put(b"abc").unwrap();
        assert_eq!(hash, *blake3::hash(b"abc").as_bytes());
        let store = ContentStore::open(dir.path()).unwrap();
        assert!(store.contains(&hash).unwrap());
        assert_eq!(store.get(&hash).unwrap().unwrap(), b"abc");
        assert_eq!(store.get(&[0; 32]).unwrap(), None);
    }

    #[test]
    fn storing_twice_is_idempotent_and_labels_move() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let a = store.put(b"a").unwrap();
        assert_eq!(store.put(b"a").unwrap(), a);
        let b = store.put(b"b").unwrap();
        store.set_label("x", &a).unwrap();
        store.set_label("x", &b).unwrap();
        assert_eq!(store.label("x").unwrap(), Some(b));
        assert_eq!(store.label("y").unwrap(), None);
        assert_eq!(store.labels().unwrap(), vec!["x".to_string()]);
    }
}
