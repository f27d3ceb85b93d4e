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
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

/// A blob's BLAKE3 hash.
pub type ContentHash = [u8; 32];

/// The database file shared with the chain store.
pub const DB_FILE: &str = "theater.db";

#[derive(Debug, thiserror::Error)]
#[error("content store {path}: {source}")]
pub struct StoreError {
    path: PathBuf,
    #[source]
    source: rusqlite::Error,
}

/// Blobs by hash and labels, in `DATA_DIR/theater.db`.
pub struct ContentStore {
    conn: Mutex<Connection>,
    path: PathBuf,
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
        let err = |source| StoreError {
            path: path.clone(),
            source,
        };
        if let Err(e) = std::fs::create_dir_all(data_dir) {
            return Err(err(rusqlite::Error::ToSqlConversionFailure(Box::new(e))));
        }
        let conn = Connection::open(&path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS blobs (
                 hash BLOB PRIMARY KEY,
                 data BLOB NOT NULL
             ) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS labels (
                 label TEXT PRIMARY KEY,
                 hash  BLOB NOT NULL
             ) WITHOUT ROWID;",
        )
        .map_err(err)?;
        Ok(ContentStore {
            conn: Mutex::new(conn),
            path,
            recent: Mutex::default(),
        })
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError {
            path: self.path.clone(),
            source,
        }
    }

    /// Stores `data` (once; storing the same bytes again is free) and returns its hash.
    pub fn put(&self, data: &[u8]) -> Result<ContentHash, StoreError> {
        let hash = *blake3::hash(data).as_bytes();
        if locked(&self.recent).contains(&hash) {
            return Ok(hash);
        }
        let conn = locked(&self.conn);
        let known: bool = conn
            .prepare_cached("SELECT 1 FROM blobs WHERE hash = ?1")
            .and_then(|mut s| s.exists([&hash[..]]))
            .map_err(|e| self.err(e))?;
        if !known {
            conn.prepare_cached("INSERT OR IGNORE INTO blobs (hash, data) VALUES (?1, ?2)")
                .and_then(|mut s| s.execute(params![&hash[..], data]))
                .map_err(|e| self.err(e))?;
        }
        drop(conn);
        let mut recent = locked(&self.recent);
        if recent.len() >= MAX_RECENT {
            recent.clear();
        }
        recent.insert(hash);
        Ok(hash)
    }

    pub fn get(&self, hash: &ContentHash) -> Result<Option<Vec<u8>>, StoreError> {
        let conn = locked(&self.conn);
        conn.prepare_cached("SELECT data FROM blobs WHERE hash = ?1")
            .and_then(|mut s| s.query_row([&hash[..]], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))
    }

    pub fn contains(&self, hash: &ContentHash) -> Result<bool, StoreError> {
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
