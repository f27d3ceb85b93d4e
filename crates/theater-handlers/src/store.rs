//! `theater:simple/store`: content-addressed stores with labels, in the data dir's database.
//! Granted by the `store` handler.
//!
//! An actor may use the stores it created with `new` and the named stores its manifest lists
//! (`stores = [...]`); any other id is refused. A store answers only for its own content, so a
//! hash from elsewhere reads as absent. Writes run in the chain writer's transactions
//! (`ChainWriter::transact`): they never fight the chains for the database's lock, each is
//! atomic, and a call returns once its change is committed, so the next read sees it.
//! Every result is recorded, so a replay reads nothing from the database.

use std::sync::Arc;

use theater::plugin::chain::{ChainWriter, TransactOp};
use theater::plugin::store::stores::{self, LabelMode, StoreName, shown};
use theater::plugin::store::{ContentHash, ContentStore, MAX_BLOB_BYTES};
use theater::plugin::wasmtime;
use theater::plugin::wasmtime::StoreContextMut;

use theater::plugin::ActorCtx;
use theater::plugin::bindings::theater::simple::store::ContentRef;
use theater::plugin::{
    Handler, HostFuture, HostLinker, RecordAs, Refusal, SettingKey, SettingsInput, at_most,
    positive,
};

type Answer<T> = (Result<T, String>,);

/// The default of `max_bytes`: what one store may hold.
pub const DEFAULT_STORE_MAX_BYTES: u64 = 64 << 20;
/// The default of `max_stores`: how many stores an actor may create with `new`.
pub const DEFAULT_MAX_STORES: u64 = 16;
/// The longest store name, id or label.
pub const MAX_STORE_NAME_BYTES: usize = 256;
pub const MAX_LABEL_BYTES: usize = 1024;

/// The `store` handler's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreSettings {
    /// The named stores the actor may use (besides those it creates).
    pub stores: Vec<String>,
    /// What one store may hold, in bytes; `None`: [`DEFAULT_STORE_MAX_BYTES`].
    pub max_bytes: Option<u64>,
    /// How many stores the actor may create; `None`: [`DEFAULT_MAX_STORES`].
    pub max_stores: Option<u64>,
}

impl StoreSettings {
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes.unwrap_or(DEFAULT_STORE_MAX_BYTES)
    }
    pub fn max_stores(&self) -> u64 {
        self.max_stores.unwrap_or(DEFAULT_MAX_STORES)
    }
}

pub(crate) struct StoreHandler;

impl Handler for StoreHandler {
    type Settings = StoreSettings;
    type State = ();

    fn name(&self) -> &'static str {
        "store"
    }
    fn interfaces(&self) -> &'static [&'static str] {
        &["theater:simple/store"]
    }
    fn keys(&self) -> &'static [SettingKey] {
        &[
            SettingKey {
                key: "stores",
                rule: "every name is in the parent's list; unset: none",
            },
            SettingKey {
                key: "max_bytes",
                rule: "at most the parent's; unset: the parent's",
            },
            SettingKey {
                key: "max_stores",
                rule: "at most the parent's; unset: the parent's",
            },
        ]
    }
    fn parse(&self, input: &SettingsInput<'_>) -> Result<StoreSettings, String> {
        let table = input.table;
        let stores: Vec<String> = match table.get("stores") {
            None => Vec::new(),
            Some(list) => list
                .as_array()
                .and_then(|a| a.iter().map(|v| v.as_str().map(str::to_owned)).collect())
                .ok_or("`stores` must be a list of store names")?,
        };
        if let Some(bad) = stores
            .iter()
            .find(|s| s.is_empty() || s.len() > MAX_STORE_NAME_BYTES)
        {
            return Err(format!(
                "`stores`: {} is not a store name (1 to {MAX_STORE_NAME_BYTES} bytes)",
                shown(bad)
            ));
        }
        Ok(StoreSettings {
            stores,
            max_bytes: positive(table, "max_bytes")?,
            max_stores: positive(table, "max_stores")?,
        })
    }
    fn attenuate(
        &self,
        parent: &StoreSettings,
        child: StoreSettings,
    ) -> Result<StoreSettings, Refusal> {
        let refuse = |key, message| Refusal::handler("store", key, message);
        if let Some(wider) = child.stores.iter().find(|s| !parent.stores.contains(s)) {
            return Err(refuse(
                "stores",
                format!(
                    "{} is not in the parent's stores {:?}",
                    shown(wider),
                    parent.stores
                ),
            ));
        }
        let within = |key, child, parent| at_most("store", key, child, parent);
        Ok(StoreSettings {
            max_bytes: within("max_bytes", child.max_bytes, parent.max_bytes())?,
            max_stores: within("max_stores", child.max_stores, parent.max_stores())?,
            stores: child.stores,
        })
    }
    fn link(&self, linker: &mut HostLinker<'_>) -> wasmtime::Result<()> {
        let mut store = linker.interface("theater:simple/store")?;
        store.func("new", RecordAs::Value, new)?;
        store.func("store", RecordAs::Value, store_content)?;
        store.func("get", RecordAs::Value, get)?;
        store.func("exists", RecordAs::Value, exists)?;
        store.func("label", RecordAs::Value, label)?;
        store.func("get-by-label", RecordAs::Value, get_by_label)?;
        store.func("remove-label", RecordAs::Value, remove_label)?;
        store.func("remove-from-label", RecordAs::Value, remove_from_label)?;
        store.func("store-at-label", RecordAs::Value, store_at_label)?;
        store.func(
            "replace-content-at-label",
            RecordAs::Value,
            replace_content_at_label,
        )?;
        store.func("replace-at-label", RecordAs::Value, replace_at_label)?;
        store.func("list-labels", RecordAs::Value, list_labels)?;
        store.func("list-all-content", RecordAs::Value, list_all_content)?;
        store.func("calculate-total-size", RecordAs::Value, total_size)?;
        Ok(())
    }
    fn new_state(&self, _: &StoreSettings) {}
}

/// What a call needs: the runtime, and the actor's id and settings.
struct Caller {
    writer: Arc<ChainWriter>,
    content: Arc<ContentStore>,
    actor: Arc<str>,
    settings: StoreSettings,
}

impl Caller {
    fn of(ctx: &ActorCtx) -> Result<Caller, String> {
        let (Some(writer), Some(content)) = (ctx.chain_writer(), ctx.content_store()) else {
            return Err("the store handler needs a data dir, and this runtime has none".into());
        };
        Ok(Caller {
            writer,
            content,
            actor: ctx.actor_id().into(),
            settings: ctx.settings::<StoreSettings>().cloned().unwrap_or_default(),
        })
    }

    fn content(&self) -> &ContentStore {
        &self.content
    }

    /// The store `id` names for this actor: a named store its manifest lists, or a store it
    /// created. Anything else is refused, in the same words whether or not it exists.
    fn store<'a>(&self, id: &'a str) -> Result<StoreName<'a>, String> {
        if self.settings.stores.iter().any(|s| s == id) {
            return Ok(StoreName::Named(id));
        }
        if id.len() <= MAX_STORE_NAME_BYTES
            && self.content().store_owner(id).map_err(|e| e.to_string())?
                == Some(self.actor.to_string())
        {
            return Ok(StoreName::Created(id));
        }
        Err(format!(
            "store {} is not granted to this actor: use an id `new` returned, or list the name in the store handler's `stores`",
            shown(id)
        ))
    }

    /// Runs `op` in the database writer's transaction and waits for it to commit.
    async fn write(&self, bytes: usize, op: TransactOp) -> Result<(), String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.writer
            .transact(
                op,
                bytes as u64,
                Box::new(move |r| {
                    let _ = tx.send(r);
                }),
            )
            .map_err(|e| e.to_string())?;
        rx.await
            .map_err(|_| "the database writer stopped".to_string())?
    }

    /// Adds `content` to the store, within its `max_bytes`; returns its hash.
    async fn add(&self, store: StoreName<'_>, content: Vec<u8>) -> Result<ContentHash, String> {
        let max_bytes = self.settings.max_bytes().min(MAX_BLOB_BYTES as u64);
        if content.len() as u64 > max_bytes {
            return Err(format!(
                "{} bytes is more than a store may hold ({max_bytes}, the store handler's `max_bytes`)",
                content.len()
            ));
        }
        let hash = *blake3::hash(&content).as_bytes();
        let key = owned(store);
        let len = content.len();
        self.write(
            len,
            Box::new(move |conn| stores::add(conn, key.name(), &hash, &content, max_bytes)),
        )
        .await?;
        Ok(hash)
    }

    async fn set_label(
        &self,
        store: StoreName<'_>,
        label: &str,
        hash: ContentHash,
        mode: LabelMode,
    ) -> Result<(), String> {
        let (key, label) = (owned(store), checked_label(label)?.to_owned());
        self.write(
            0,
            Box::new(move |conn| stores::set_label(conn, key.name(), &label, &hash, mode)),
        )
        .await
    }
}

/// A store's name, owned, for a change that runs on the writer's thread.
enum OwnedName {
    Named(String),
    Created(String),
}

impl OwnedName {
    fn name(&self) -> StoreName<'_> {
        match self {
            OwnedName::Named(n) => StoreName::Named(n),
            OwnedName::Created(n) => StoreName::Created(n),
        }
    }
}

fn owned(store: StoreName<'_>) -> OwnedName {
    match store {
        StoreName::Named(n) => OwnedName::Named(n.to_owned()),
        StoreName::Created(n) => OwnedName::Created(n.to_owned()),
    }
}

fn checked_label(label: &str) -> Result<&str, String> {
    if label.is_empty() || label.len() > MAX_LABEL_BYTES {
        return Err(format!(
            "{} is not a label (1 to {MAX_LABEL_BYTES} bytes)",
            shown(label)
        ));
    }
    Ok(label)
}

/// A content reference's hash: 64 hex digits.
fn hash_of(reference: &ContentRef) -> Result<ContentHash, String> {
    let mut hash = [0; 32];
    match hex::decode_to_slice(&reference.hash, &mut hash) {
        Ok(()) => Ok(hash),
        Err(_) => Err(format!(
            "{} is not a content hash (64 hex digits)",
            shown(&reference.hash)
        )),
    }
}

fn reference(hash: ContentHash) -> ContentRef {
    ContentRef {
        hash: hex::encode(hash),
    }
}

/// Runs `f` with the caller, as an answer the guest sees (`Err` for every refusal).
macro_rules! answer {
    ($store:expr, |$caller:ident| $body:expr) => {{
        let caller = Caller::of($store.data());
        Box::pin(async move {
            let result = async {
                let $caller = caller?;
                $body
            }
            .await;
            Ok((result,))
        })
    }};
}

fn new(store: StoreContextMut<'_, ActorCtx>, (): ()) -> HostFuture<'_, Answer<String>> {
    answer!(store, |caller| {
        let id = uuid::Uuid::new_v4().to_string();
        let (op_id, owner, max) = (
            id.clone(),
            caller.actor.to_string(),
            caller.settings.max_stores(),
        );
        caller
            .write(
                0,
                Box::new(move |conn| stores::create(conn, &op_id, &owner, max)),
            )
            .await?;
        Ok(id)
    })
}

fn store_content(
    store: StoreContextMut<'_, ActorCtx>,
    (id, content): (String, Vec<u8>),
) -> HostFuture<'_, Answer<ContentRef>> {
    answer!(store, |caller| {
        let name = caller.store(&id)?;
        caller.add(name, content).await.map(reference)
    })
}

fn get(
    store: StoreContextMut<'_, ActorCtx>,
    (id, content_ref): (String, ContentRef),
) -> HostFuture<'_, Answer<Vec<u8>>> {
    answer!(store, |caller| {
        let (name, hash) = (caller.store(&id)?, hash_of(&content_ref)?);
        caller
            .content()
            .store_get(name, &hash)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| stores::not_member(&hash))
    })
}

fn exists(
    store: StoreContextMut<'_, ActorCtx>,
    (id, content_ref): (String, ContentRef),
) -> HostFuture<'_, Answer<bool>> {
    answer!(store, |caller| {
        let (name, hash) = (caller.store(&id)?, hash_of(&content_ref)?);
        caller
            .content()
            .store_contains(name, &hash)
            .map_err(|e| e.to_string())
    })
}

fn label(
    store: StoreContextMut<'_, ActorCtx>,
    (id, label, content_ref): (String, String, ContentRef),
) -> HostFuture<'_, Answer<()>> {
    answer!(store, |caller| {
        let (name, hash) = (caller.store(&id)?, hash_of(&content_ref)?);
        caller.set_label(name, &label, hash, LabelMode::Set).await
    })
}

fn get_by_label(
    store: StoreContextMut<'_, ActorCtx>,
    (id, label): (String, String),
) -> HostFuture<'_, Answer<Option<ContentRef>>> {
    answer!(store, |caller| {
        let name = caller.store(&id)?;
        let found = caller
            .content()
            .store_label(name, checked_label(&label)?)
            .map_err(|e| e.to_string())?;
        Ok(found.map(reference))
    })
}

fn remove_label(
    store: StoreContextMut<'_, ActorCtx>,
    (id, label): (String, String),
) -> HostFuture<'_, Answer<()>> {
    answer!(store, |caller| {
        let key = owned(caller.store(&id)?);
        let label = checked_label(&label)?.to_owned();
        caller
            .write(
                0,
                Box::new(move |conn| stores::remove_label(conn, key.name(), &label, None)),
            )
            .await
    })
}

fn remove_from_label(
    store: StoreContextMut<'_, ActorCtx>,
    (id, label, content_ref): (String, String, ContentRef),
) -> HostFuture<'_, Answer<()>> {
    answer!(store, |caller| {
        let key = owned(caller.store(&id)?);
        let (label, hash) = (checked_label(&label)?.to_owned(), hash_of(&content_ref)?);
        caller
            .write(
                0,
                Box::new(move |conn| stores::remove_label(conn, key.name(), &label, Some(&hash))),
            )
            .await
    })
}

fn store_at_label(
    store: StoreContextMut<'_, ActorCtx>,
    (id, label, content): (String, String, Vec<u8>),
) -> HostFuture<'_, Answer<ContentRef>> {
    answer!(store, |caller| {
        let name = caller.store(&id)?;
        checked_label(&label)?;
        let hash = caller.add(name, content).await?;
        caller.set_label(name, &label, hash, LabelMode::Set).await?;
        Ok(reference(hash))
    })
}

fn replace_content_at_label(
    store: StoreContextMut<'_, ActorCtx>,
    (id, label, content): (String, String, Vec<u8>),
) -> HostFuture<'_, Answer<ContentRef>> {
    answer!(store, |caller| {
        let name = caller.store(&id)?;
        let label = checked_label(&label)?;
        if caller
            .content()
            .store_label(name, label)
            .map_err(|e| e.to_string())?
            .is_none()
        {
            return Err(format!("the store has no label {}", shown(label)));
        }
        let hash = caller.add(name, content).await?;
        caller
            .set_label(name, label, hash, LabelMode::Replace)
            .await?;
        Ok(reference(hash))
    })
}

fn replace_at_label(
    store: StoreContextMut<'_, ActorCtx>,
    (id, label, content_ref): (String, String, ContentRef),
) -> HostFuture<'_, Answer<()>> {
    answer!(store, |caller| {
        let (name, hash) = (caller.store(&id)?, hash_of(&content_ref)?);
        caller
            .set_label(name, &label, hash, LabelMode::Replace)
            .await
    })
}

fn list_labels(
    store: StoreContextMut<'_, ActorCtx>,
    (id,): (String,),
) -> HostFuture<'_, Answer<Vec<String>>> {
    answer!(store, |caller| {
        let name = caller.store(&id)?;
        caller
            .content()
            .store_labels(name)
            .map_err(|e| e.to_string())
    })
}

fn list_all_content(
    store: StoreContextMut<'_, ActorCtx>,
    (id,): (String,),
) -> HostFuture<'_, Answer<Vec<ContentRef>>> {
    answer!(store, |caller| {
        let name = caller.store(&id)?;
        let hashes = caller
            .content()
            .store_contents(name)
            .map_err(|e| e.to_string())?;
        Ok(hashes.into_iter().map(reference).collect())
    })
}

fn total_size(
    store: StoreContextMut<'_, ActorCtx>,
    (id,): (String,),
) -> HostFuture<'_, Answer<u64>> {
    answer!(store, |caller| {
        let name = caller.store(&id)?;
        caller.content().store_size(name).map_err(|e| e.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(stores: &[&str], max_bytes: Option<u64>) -> StoreSettings {
        StoreSettings {
            stores: stores.iter().map(|s| s.to_string()).collect(),
            max_bytes,
            max_stores: None,
        }
    }

    #[test]
    fn a_child_gets_no_store_and_no_room_its_parent_lacks() {
        let parent = settings(&["notes", "cache"], Some(1000));
        let child = StoreHandler
            .attenuate(&parent, settings(&["notes"], None))
            .unwrap();
        assert_eq!(child.max_bytes, Some(1000));
        assert_eq!(child.max_stores, Some(DEFAULT_MAX_STORES));
        let wider = StoreHandler
            .attenuate(&parent, settings(&["secrets"], None))
            .unwrap_err();
        assert_eq!(wider.key, "stores");
        let bigger = StoreHandler
            .attenuate(&parent, settings(&[], Some(1001)))
            .unwrap_err();
        assert_eq!(bigger.key, "max_bytes");
    }

    #[test]
    fn hashes_are_64_hex_digits() {
        let ok = reference([7; 32]);
        assert_eq!(hash_of(&ok).unwrap(), [7; 32]);
        for bad in ["", "../etc/passwd", &"g".repeat(64), &"a".repeat(66)] {
            let e = hash_of(&ContentRef { hash: bad.into() }).unwrap_err();
            assert!(e.contains("not a content hash"), "{e}");
        }
    }
}
