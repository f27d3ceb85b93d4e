//! Actor stores: named sets of content, kept in the shared `blobs` table, each with its own
//! labels. The `store` handler gives actors these; this module is its storage, with no notion
//! of actors beyond an owner's id.
//!
//! A store's content is the blobs it was given, not every blob in the database: `get` and
//! `exists` answer only for members, so nobody reads another store's data by guessing hashes.
//! Store keys and labels are values in rows, never paths.
//!
//! Writes are functions of a [`Connection`] that run inside a transaction the caller owns (the
//! database's one writer); reads are [`ContentStore`] methods on its reading connection.

use rusqlite::{Connection, OptionalExtension, params};

use crate::{ContentHash, ContentStore, StoreError, insert_blob, locked};

/// Which store a key names. Named stores (from manifests) and created stores (from `new`)
/// live in separate namespaces, so that a manifest naming a store after another actor's
/// created id gets a different store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreName<'a> {
    /// A store a manifest names; shared by every actor that names it.
    Named(&'a str),
    /// A store `new` created; usable by its owner only.
    Created(&'a str),
}

impl StoreName<'_> {
    /// The row key: a prefix per namespace, then the name as given.
    pub fn key(&self) -> String {
        match self {
            StoreName::Named(name) => format!("n/{name}"),
            StoreName::Created(id) => format!("c/{id}"),
        }
    }
}

pub(crate) const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS actor_stores (
        key   TEXT PRIMARY KEY,
        owner TEXT,
        -- The sizes of its contents together, kept as they are added: checking `max_bytes`
        -- must not read the whole store.
        bytes INTEGER NOT NULL DEFAULT 0,
        -- Its contents and labels together, bounded by `MAX_ENTRIES`: rows cost room too,
        -- and every listing returns them all.
        entries INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS actor_store_content (
        key  TEXT NOT NULL,
        hash BLOB NOT NULL,
        size INTEGER NOT NULL,
        PRIMARY KEY (key, hash)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS actor_store_labels (
        key   TEXT NOT NULL,
        label TEXT NOT NULL,
        hash  BLOB NOT NULL,
        PRIMARY KEY (key, label)
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS actor_stores_by_owner ON actor_stores (owner);";

/// The most contents and labels one store holds together, whatever their sizes: a store of
/// tiny contents or many labels costs rows, and `list-all-content` and `list-labels` return
/// every one.
pub const MAX_ENTRIES: u64 = 100_000;

/// What a write does when it is refused: its own error (the store is full, the label is
/// missing), as opposed to a database failure, which fails the writer's whole transaction.
pub type Refused = Result<(), String>;

/// Creates the store `id`, owned by `owner`, if `owner` has fewer than `max_owned` stores.
pub fn create(
    conn: &Connection,
    id: &str,
    owner: &str,
    max_owned: u64,
) -> rusqlite::Result<Refused> {
    let owned: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM actor_stores WHERE owner = ?1")?
        .query_row([owner], |r| r.get(0))?;
    if owned as u64 >= max_owned {
        return Ok(Err(format!(
            "this actor has created {owned} stores already, its limit (the store handler's `max_stores`)"
        )));
    }
    conn.prepare_cached("INSERT INTO actor_stores (key, owner) VALUES (?1, ?2)")?
        .execute(params![StoreName::Created(id).key(), owner])?;
    Ok(Ok(()))
}

/// Adds `data` (whose hash is `hash`) to the store, unless its total would pass `max_bytes`.
/// Content the store holds already is free.
pub fn add(
    conn: &Connection,
    store: StoreName<'_>,
    hash: &ContentHash,
    data: &[u8],
    max_bytes: u64,
) -> rusqlite::Result<Refused> {
    let key = store.key();
    if member(conn, &key, hash)? {
        return Ok(Ok(()));
    }
    if let Some(full) = full(conn, &key)? {
        return Ok(Err(full));
    }
    let total = total_size(conn, &key)?;
    let size = data.len() as u64;
    if total.saturating_add(size) > max_bytes {
        return Ok(Err(format!(
            "the store holds {total} bytes; {size} more would pass its limit of {max_bytes} (the store handler's `max_bytes`)"
        )));
    }
    insert_blob(conn, hash, data)?;
    conn.prepare_cached("INSERT OR IGNORE INTO actor_stores (key, owner) VALUES (?1, NULL)")?
        .execute([&key])?;
    conn.prepare_cached("INSERT INTO actor_store_content (key, hash, size) VALUES (?1, ?2, ?3)")?
        .execute(params![key, &hash[..], size as i64])?;
    conn.prepare_cached(
        "UPDATE actor_stores SET bytes = bytes + ?2, entries = entries + 1 WHERE key = ?1",
    )?
    .execute(params![key, size as i64])?;
    Ok(Ok(()))
}

/// How `set_label` treats a label that exists, or does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelMode {
    /// Point it at the content, replacing what it pointed at.
    Set,
    /// Only if it exists.
    Replace,
}

/// Points `label` at `hash`, which must be in the store.
pub fn set_label(
    conn: &Connection,
    store: StoreName<'_>,
    label: &str,
    hash: &ContentHash,
    mode: LabelMode,
) -> rusqlite::Result<Refused> {
    let key = store.key();
    if !member(conn, &key, hash)? {
        return Ok(Err(not_member(hash)));
    }
    let exists = label_of(conn, &key, label)?.is_some();
    if mode == LabelMode::Replace && !exists {
        return Ok(Err(no_label(label)));
    }
    if !exists {
        if let Some(full) = full(conn, &key)? {
            return Ok(Err(full));
        }
        conn.prepare_cached("UPDATE actor_stores SET entries = entries + 1 WHERE key = ?1")?
            .execute([&key])?;
    }
    conn.prepare_cached(
        "INSERT INTO actor_store_labels (key, label, hash) VALUES (?1, ?2, ?3)
         ON CONFLICT (key, label) DO UPDATE SET hash = excluded.hash",
    )?
    .execute(params![key, label, &hash[..]])?;
    Ok(Ok(()))
}

/// Removes `label`; with `only`, only if it points at that content.
pub fn remove_label(
    conn: &Connection,
    store: StoreName<'_>,
    label: &str,
    only: Option<&ContentHash>,
) -> rusqlite::Result<Refused> {
    let key = store.key();
    let Some(current) = label_of(conn, &key, label)? else {
        return Ok(Err(no_label(label)));
    };
    if let Some(only) = only
        && *only != current
    {
        return Ok(Err(format!(
            "label {} points at {}, not at {}",
            shown(label),
            hex::encode(current),
            hex::encode(only)
        )));
    }
    conn.prepare_cached("DELETE FROM actor_store_labels WHERE key = ?1 AND label = ?2")?
        .execute(params![key, label])?;
    conn.prepare_cached("UPDATE actor_stores SET entries = entries - 1 WHERE key = ?1")?
        .execute([&key])?;
    Ok(Ok(()))
}

fn member(conn: &Connection, key: &str, hash: &ContentHash) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM actor_store_content WHERE key = ?1 AND hash = ?2")?
        .exists(params![key, &hash[..]])
}

/// Why the store takes no more entries, if it is full.
fn full(conn: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    let entries: Option<i64> = conn
        .prepare_cached("SELECT entries FROM actor_stores WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?;
    Ok((entries.unwrap_or(0) as u64 >= MAX_ENTRIES)
        .then(|| format!("the store holds {MAX_ENTRIES} contents and labels, its limit")))
}

fn total_size(conn: &Connection, key: &str) -> rusqlite::Result<u64> {
    let bytes: Option<i64> = conn
        .prepare_cached("SELECT bytes FROM actor_stores WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?;
    Ok(bytes.unwrap_or(0) as u64)
}

fn label_of(conn: &Connection, key: &str, label: &str) -> rusqlite::Result<Option<ContentHash>> {
    let found: Option<Vec<u8>> = conn
        .prepare_cached("SELECT hash FROM actor_store_labels WHERE key = ?1 AND label = ?2")?
        .query_row(params![key, label], |r| r.get(0))
        .optional()?;
    Ok(found.and_then(|h| h.try_into().ok()))
}

/// A name or label for an error message: quoted, and cut short if long.
pub fn shown(s: &str) -> String {
    const MAX: usize = 80;
    if s.len() <= MAX {
        return format!("{s:?}");
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}... ({} bytes)", &s[..end], s.len())
}

pub fn not_member(hash: &ContentHash) -> String {
    format!("content {} is not in this store", hex::encode(hash))
}

fn no_label(label: &str) -> String {
    format!("the store has no label {}", shown(label))
}

/// Reads of actor stores.
impl ContentStore {
    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        f(&locked(&self.conn)).map_err(|e| self.err(e))
    }

    /// The owner of the created store `id`: `None` if there is no such store.
    pub fn store_owner(&self, id: &str) -> Result<Option<String>, StoreError> {
        self.read(|c| {
            c.prepare_cached("SELECT owner FROM actor_stores WHERE key = ?1")?
                .query_row([StoreName::Created(id).key()], |r| {
                    r.get::<_, Option<String>>(0)
                })
                .optional()
                .map(Option::flatten)
        })
    }

    /// The content `hash` if the store holds it.
    pub fn store_get(
        &self,
        store: StoreName<'_>,
        hash: &ContentHash,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT b.data FROM actor_store_content m JOIN blobs b ON b.hash = m.hash
                 WHERE m.key = ?1 AND m.hash = ?2",
            )?
            .query_row(params![store.key(), &hash[..]], |r| r.get(0))
            .optional()
        })
    }

    pub fn store_contains(
        &self,
        store: StoreName<'_>,
        hash: &ContentHash,
    ) -> Result<bool, StoreError> {
        self.read(|c| member(c, &store.key(), hash))
    }

    pub fn store_label(
        &self,
        store: StoreName<'_>,
        label: &str,
    ) -> Result<Option<ContentHash>, StoreError> {
        self.read(|c| label_of(c, &store.key(), label))
    }

    /// The store's labels, sorted.
    pub fn store_labels(&self, store: StoreName<'_>) -> Result<Vec<String>, StoreError> {
        self.read(|c| {
            c.prepare_cached("SELECT label FROM actor_store_labels WHERE key = ?1 ORDER BY label")?
                .query_map([store.key()], |r| r.get(0))?
                .collect()
        })
    }

    /// The hashes of the store's content, sorted.
    pub fn store_contents(&self, store: StoreName<'_>) -> Result<Vec<ContentHash>, StoreError> {
        self.read(|c| {
            c.prepare_cached("SELECT hash FROM actor_store_content WHERE key = ?1 ORDER BY hash")?
                .query_map([store.key()], |r| r.get::<_, Vec<u8>>(0))?
                .map(|h| h.map(|h| h.try_into().unwrap_or([0; 32])))
                .collect()
        })
    }

    /// The bytes of the store's content, together.
    pub fn store_size(&self, store: StoreName<'_>) -> Result<u64, StoreError> {
        self.read(|c| total_size(c, &store.key()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(data: &[u8]) -> ContentHash {
        *blake3::hash(data).as_bytes()
    }

    fn open() -> (tempfile::TempDir, ContentStore, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let conn = Connection::open(dir.path().join(crate::DB_FILE)).unwrap();
        (dir, store, conn)
    }

    #[test]
    fn content_belongs_to_the_store_it_was_added_to() {
        let (_dir, store, conn) = open();
        let (a, b) = (StoreName::Named("a"), StoreName::Named("b"));
        add(&conn, a, &hash(b"x"), b"x", 100).unwrap().unwrap();
        assert_eq!(store.store_get(a, &hash(b"x")).unwrap().unwrap(), b"x");
        // The blob is in the database, but not in `b`: `b` neither reads nor sees it.
        assert_eq!(store.store_get(b, &hash(b"x")).unwrap(), None);
        assert!(!store.store_contains(b, &hash(b"x")).unwrap());
        // Nor does a created store of the same name.
        assert!(
            !store
                .store_contains(StoreName::Created("a"), &hash(b"x"))
                .unwrap()
        );
        assert_eq!(store.store_contents(a).unwrap(), vec![hash(b"x")]);
        assert_eq!(store.store_size(a).unwrap(), 1);
    }

    #[test]
    fn max_bytes_bounds_a_store_and_repeats_are_free() {
        let (_dir, store, conn) = open();
        let s = StoreName::Named("s");
        add(&conn, s, &hash(b"12345"), b"12345", 8)
            .unwrap()
            .unwrap();
        add(&conn, s, &hash(b"12345"), b"12345", 8)
            .unwrap()
            .unwrap();
        let over = add(&conn, s, &hash(b"6789"), b"6789", 8)
            .unwrap()
            .unwrap_err();
        assert!(over.contains("limit of 8"), "{over}");
        assert_eq!(store.store_size(s).unwrap(), 5);
    }

    #[test]
    fn a_store_takes_at_most_max_entries_contents_and_labels() {
        let (_dir, _store, conn) = open();
        let s = StoreName::Named("s");
        add(&conn, s, &hash(b"a"), b"a", 100).unwrap().unwrap();
        set_label(&conn, s, "l", &hash(b"a"), LabelMode::Set)
            .unwrap()
            .unwrap();
        let entries = |conn: &Connection| -> i64 {
            conn.query_row(
                "SELECT entries FROM actor_stores WHERE key = 'n/s'",
                [],
                |r| r.get(0),
            )
            .unwrap()
        };
        assert_eq!(entries(&conn), 2);
        // Replacing a label adds no entry; removing one frees it.
        set_label(&conn, s, "l", &hash(b"a"), LabelMode::Replace)
            .unwrap()
            .unwrap();
        assert_eq!(entries(&conn), 2);
        remove_label(&conn, s, "l", None).unwrap().unwrap();
        assert_eq!(entries(&conn), 1);
        conn.execute(
            "UPDATE actor_stores SET entries = ?1 WHERE key = 'n/s'",
            [MAX_ENTRIES as i64],
        )
        .unwrap();
        let e = add(&conn, s, &hash(b"b"), b"b", 100).unwrap().unwrap_err();
        assert!(e.contains("contents and labels, its limit"), "{e}");
        let e = set_label(&conn, s, "m", &hash(b"a"), LabelMode::Set)
            .unwrap()
            .unwrap_err();
        assert!(e.contains("its limit"), "{e}");
    }

    #[test]
    fn labels_point_at_members_only() {
        let (_dir, store, conn) = open();
        let s = StoreName::Created("id");
        create(&conn, "id", "me", 1).unwrap().unwrap();
        assert_eq!(store.store_owner("id").unwrap().as_deref(), Some("me"));
        let refused = create(&conn, "other", "me", 1).unwrap().unwrap_err();
        assert!(refused.contains("max_stores"), "{refused}");
        let x = hash(b"x");
        let e = set_label(&conn, s, "l", &x, LabelMode::Set)
            .unwrap()
            .unwrap_err();
        assert!(e.contains("not in this store"), "{e}");
        add(&conn, s, &x, b"x", 10).unwrap().unwrap();
        let e = set_label(&conn, s, "l", &x, LabelMode::Replace)
            .unwrap()
            .unwrap_err();
        assert!(e.contains("no label"), "{e}");
        // A label shaped like a path is only data.
        set_label(&conn, s, "../../etc/passwd", &x, LabelMode::Set)
            .unwrap()
            .unwrap();
        assert_eq!(store.store_label(s, "../../etc/passwd").unwrap(), Some(x));
        let e = remove_label(&conn, s, "../../etc/passwd", Some(&[0; 32]))
            .unwrap()
            .unwrap_err();
        assert!(e.contains("points at"), "{e}");
        remove_label(&conn, s, "../../etc/passwd", Some(&x))
            .unwrap()
            .unwrap();
        assert!(store.store_labels(s).unwrap().is_empty());
        assert!(remove_label(&conn, s, "gone", None).unwrap().is_err());
    }
}
