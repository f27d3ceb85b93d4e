//! Sending, requests and channels between actors (and from the embedding program).
//!
//! Rules, all documented in `docs/architecture.md`:
//! - one mailbox per receiver, so messages from one sender arrive in the order they were sent,
//!   whether `send` or `request`;
//! - a full mailbox makes the sender wait for room, up to its request timeout, then `err`;
//!   nothing is dropped silently;
//! - a wait that would close a cycle of actors waiting on each other fails at once.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::actor::{ActorCtx, Reply};
use crate::cell::{Call, Cell, Envelope, Message, Refused};
use crate::component::ExportDecl;
use crate::deadlock::Cycle;
use crate::family::Recovery;
use crate::shared::{Shared, Work, short_id};
use crate::sync::LockExt;

/// Open channels, by id.
#[derive(Default)]
pub(crate) struct Channels {
    map: Mutex<HashMap<Arc<str>, Channel>>,
}

struct Channel {
    opener: Arc<str>,
    acceptor: Arc<str>,
    /// `None` until the acceptor's `handle-channel-open` accepts it. An open channel keeps the
    /// runtime from being quiescent.
    open: Option<Work>,
}

impl Channels {
    fn opening(&self, id: Arc<str>, opener: Arc<str>, acceptor: Arc<str>) {
        self.map.locked().insert(
            id,
            Channel {
                opener,
                acceptor,
                open: None,
            },
        );
    }

    pub(crate) fn accept(&self, id: &str, shared: &Shared) {
        if let Some(channel) = self.map.locked().get_mut(id) {
            channel.open = Some(shared.busy.begin());
        }
    }

    pub(crate) fn forget(&self, id: &str) {
        self.map.locked().remove(id);
    }

    /// The other end of an open channel that `me` is an end of.
    fn peer(&self, id: &str, me: &str) -> Result<Arc<str>, String> {
        let map = self.map.locked();
        let channel = map.get(id).ok_or_else(|| no_channel(id))?;
        if channel.open.is_none() {
            return Err(format!("channel {id} is not open yet"));
        }
        if *channel.opener == *me {
            Ok(channel.acceptor.clone())
        } else if *channel.acceptor == *me {
            Ok(channel.opener.clone())
        } else {
            Err(format!("this actor is not an end of channel {id}"))
        }
    }

    /// Closes a channel `me` is an end of; returns the other end.
    fn close(&self, id: &str, me: &str) -> Result<Arc<str>, String> {
        let peer = self.peer(id, me)?;
        self.map.locked().remove(id);
        Ok(peer)
    }

    /// Closes every channel `actor` is an end of, telling the other ends.
    pub(crate) fn close_all_of(&self, shared: &Arc<Shared>, actor: &Arc<str>) {
        let closed: Vec<(Arc<str>, Arc<str>)> = {
            let mut map = self.map.locked();
            let ids: Vec<Arc<str>> = map
                .iter()
                .filter(|(_, c)| c.opener == *actor || c.acceptor == *actor)
                .map(|(id, _)| id.clone())
                .collect();
            ids.into_iter()
                .filter_map(|id| {
                    let c = map.remove(&id)?;
                    let peer = if c.opener == *actor {
                        c.acceptor
                    } else {
                        c.opener
                    };
                    c.open.map(|_| (id, peer))
                })
                .collect()
        };
        for (channel, peer) in closed {
            shared.notify_id(&peer, Some(actor), Message::ChannelClose { channel }, None);
        }
    }
}

/// `{prefix:08x}-{n:x}`, formatted on the stack: the id's one allocation is its `Arc`.
fn message_id(prefix: u32, n: u64) -> Arc<str> {
    use std::io::Write;
    let mut buf = [0u8; 8 + 1 + 16];
    let unused = {
        let mut rest = &mut buf[..];
        write!(rest, "{prefix:08x}-{n:x}").expect("an id fits its buffer");
        rest.len()
    };
    let len = buf.len() - unused;
    Arc::from(std::str::from_utf8(&buf[..len]).expect("hex digits"))
}

fn no_channel(id: &str) -> String {
    format!("no open channel {id} (it was never opened, or it was closed)")
}

impl Shared {
    /// A message id unique in this runtime (and, by its random prefix, across runs).
    pub(crate) fn next_message_id(&self) -> Arc<str> {
        let n = self.message_counter.fetch_add(1, Ordering::Relaxed);
        message_id(self.message_prefix, n)
    }

    /// Describes a refused wait for an error message.
    pub(crate) fn describe_cycle(&self, what: &str, cycle: &Cycle) -> String {
        let names: Vec<String> = cycle
            .0
            .iter()
            .map(|id| match self.cell(id) {
                Some(cell) => cell.label(),
                None => short_id(id).to_owned(),
            })
            .collect();
        format!(
            "{what} would deadlock: {} would each wait on the next (an actor handles one call at a time)",
            names.join(" -> ")
        )
    }

    /// Delivers one of the runtime's notices (a channel's greeting or close, a child's exit for
    /// its parent), if the receiver exports its handler and is still there. A full mailbox
    /// takes it too (see [`Shared::enqueue`]), so it cannot fail otherwise.
    pub(crate) fn notify(
        self: &Arc<Self>,
        cell: &Arc<Cell>,
        sender: Option<&Arc<str>>,
        message: Message,
        id: Option<Arc<str>>,
    ) {
        if cell.exports(message.export()) {
            let envelope = Envelope {
                id,
                sender: sender.cloned(),
                message,
            };
            let _ = self.enqueue(cell, envelope, true);
        }
    }

    /// [`Shared::notify`] by actor id; an actor that is gone is not told.
    pub(crate) fn notify_id(
        self: &Arc<Self>,
        target: &str,
        sender: Option<&Arc<str>>,
        message: Message,
        id: Option<Arc<str>>,
    ) {
        if let Some(cell) = self.cell(target) {
            self.notify(&cell, sender, message, id);
        }
    }

    /// Delivers `message` to `target`, waiting up to `timeout` for room in a full mailbox.
    pub(crate) async fn deliver(
        self: &Arc<Self>,
        sender: Option<&Arc<str>>,
        target: &str,
        message: Message,
        id: Option<Arc<str>>,
        timeout: Duration,
    ) -> Result<(), String> {
        let cell = self.cell(target).ok_or_else(|| no_actor(target))?;
        self.deliver_to(sender, &cell, message, id, timeout).await
    }

    /// [`Shared::deliver`] to a cell already looked up.
    async fn deliver_to(
        self: &Arc<Self>,
        sender: Option<&Arc<str>>,
        cell: &Arc<Cell>,
        message: Message,
        id: Option<Arc<str>>,
        timeout: Duration,
    ) -> Result<(), String> {
        let export = message.export();
        if !cell.exports(export) {
            return Err(format!(
                "actor {} does not export `{}`, so it cannot take this message",
                cell.label(),
                export.function()
            ));
        }
        let len = message.payload_len();
        if len > cell.messaging.max_message_bytes as usize {
            return Err(format!(
                "a message of {len} bytes is over actor {}'s limit of {} bytes ([messaging] max_message_bytes)",
                cell.label(),
                cell.messaging.max_message_bytes
            ));
        }
        let envelope = Envelope {
            id,
            sender: sender.cloned(),
            message,
        };
        // The fast path registers for nothing: most mailboxes have room.
        let Some(mut envelope) = self.offer(cell, envelope)? else {
            return Ok(());
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let mut waiting = None;
        loop {
            // Registered for room before trying again, so that room made after the refusal
            // above (or the last wake) is not missed.
            let room = cell.space.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            envelope = match self.offer(cell, envelope)? {
                None => return Ok(()),
                Some(back) => back,
            };
            // Waiting for room is waiting on the receiver, so it takes part in cycle checks.
            if waiting.is_none()
                && let Some(sender) = sender
                && !self.waits.is_waiting(sender)
            {
                waiting = Some(
                    self.waits
                        .wait(sender, &cell.id)
                        .map_err(|c| self.describe_cycle("sending to a full mailbox", &c))?,
                );
            }
            if tokio::time::timeout_at(deadline, room).await.is_err() {
                return Err(format!(
                    "{} and stayed full for {} ms",
                    full(cell),
                    timeout.as_millis()
                ));
            }
        }
    }

    /// Puts `envelope` in `cell`'s mailbox if it has room: `None` once delivered, the envelope
    /// back if the mailbox is full, or why it cannot be delivered at all.
    fn offer(
        self: &Arc<Self>,
        cell: &Arc<Cell>,
        envelope: Envelope,
    ) -> Result<Option<Envelope>, String> {
        match self.enqueue(cell, envelope, false) {
            Ok(()) => Ok(None),
            Err(Refused::Full(back)) => Ok(Some(back)),
            Err(Refused::Gone) => Err(stopped(cell)),
            Err(Refused::OverBudget) => Err(format!(
                "the runtime's mailboxes hold its whole budget of {} bytes already (theater run --mailbox-budget-mb); actor {} cannot take the message now",
                self.mailboxes.limit,
                cell.label()
            )),
        }
    }

    /// Sends a request and waits for its answer, up to `timeout`. An answer over `max_answer`
    /// bytes (the requester's message limit) fails the request instead.
    pub(crate) async fn request(
        self: &Arc<Self>,
        sender: Option<&Arc<str>>,
        target: &str,
        msg: Vec<u8>,
        id: Arc<str>,
        timeout: Duration,
        max_answer: u64,
    ) -> Result<Vec<u8>, String> {
        let cell = self.cell(target).ok_or_else(|| no_actor(target))?;
        // A request waiting for its answer (deferred, perhaps) is work in progress.
        let _work = self.busy.begin();
        let _waiting = match sender {
            Some(sender) => Some(
                self.waits
                    .wait(sender, &cell.id)
                    .map_err(|c| self.describe_cycle(&format!("request {id}"), &c))?,
            ),
            None => None,
        };
        let (reply, answer) = Reply::new(max_answer);
        let deadline = tokio::time::Instant::now() + timeout;
        self.deliver_to(
            sender,
            &cell,
            Message::Request(msg, reply),
            Some(id.clone()),
            timeout,
        )
        .await?;
        match tokio::time::timeout_at(deadline, answer).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(format!(
                "actor {} stopped before answering request {id}",
                cell.label()
            )),
            Err(_) => Err(format!(
                "request {id} to actor {} got no answer within {} ms ([messaging] request_timeout_ms)",
                cell.label(),
                timeout.as_millis()
            )),
        }
    }

    /// Opens a channel from `opener` to `target`; returns its id once the target accepted it.
    pub(crate) async fn open_channel(
        self: &Arc<Self>,
        opener: &Arc<str>,
        target: &str,
        msg: Vec<u8>,
        id: Arc<str>,
        timeout: Duration,
    ) -> Result<Arc<str>, String> {
        let cell = self.cell(target).ok_or_else(|| no_actor(target))?;
        let channel: Arc<str> = format!("ch-{id}").into();
        let _waiting = self
            .waits
            .wait(opener, &cell.id)
            .map_err(|c| self.describe_cycle("open-channel", &c))?;
        self.channels
            .opening(channel.clone(), opener.clone(), cell.id.clone());
        // Forgets the half-open channel however this ends, a kill of the caller included.
        let mut opening = Opening {
            channels: &self.channels,
            id: Some(channel.clone()),
        };
        let (reply, answer) = oneshot::channel();
        let deadline = tokio::time::Instant::now() + timeout;
        let message = Message::ChannelOpen {
            channel: channel.clone(),
            msg,
            reply,
        };
        let result = match self
            .deliver_to(Some(opener), &cell, message, Some(id), timeout)
            .await
        {
            Err(e) => Err(e),
            Ok(()) => match tokio::time::timeout_at(deadline, answer).await {
                Ok(Ok(answer)) => answer,
                Ok(Err(_)) => Err(format!(
                    "actor {} stopped before answering the channel",
                    cell.label()
                )),
                Err(_) => Err(format!(
                    "actor {} did not answer the channel within {} ms ([messaging] request_timeout_ms)",
                    cell.label(),
                    timeout.as_millis()
                )),
            },
        };
        if result.is_ok() {
            opening.id = None;
        }
        result.map(|()| channel)
    }

    pub(crate) async fn send_on_channel(
        self: &Arc<Self>,
        me: &Arc<str>,
        channel: &str,
        msg: Vec<u8>,
        id: Arc<str>,
        timeout: Duration,
    ) -> Result<(), String> {
        let peer = self.channels.peer(channel, me)?;
        let message = Message::ChannelMessage {
            channel: channel.into(),
            msg,
        };
        self.deliver(Some(me), &peer, message, Some(id), timeout)
            .await
    }

    pub(crate) fn close_channel(
        self: &Arc<Self>,
        me: &Arc<str>,
        channel: &str,
        id: Arc<str>,
    ) -> Result<(), String> {
        let peer = self.channels.close(channel, me)?;
        // The peer may have stopped meanwhile; the channel is closed either way.
        let close = Message::ChannelClose {
            channel: channel.into(),
        };
        self.notify_id(&peer, Some(me), close, Some(id));
        Ok(())
    }
}

/// A channel being opened; forgotten on drop unless it was accepted.
struct Opening<'c> {
    channels: &'c Channels,
    id: Option<Arc<str>>,
}

impl Drop for Opening<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.channels.forget(&id);
        }
    }
}

fn no_actor(id: &str) -> String {
    format!("no actor {id} (it never existed, or it has stopped)")
}

fn stopped(cell: &Cell) -> String {
    format!("actor {} has stopped", cell.label())
}

fn full(cell: &Cell) -> String {
    format!(
        "the mailbox of actor {} is full ({} messages or {} bytes, [messaging] mailbox_capacity and mailbox_bytes)",
        cell.label(),
        cell.messaging.mailbox_capacity,
        cell.messaging.mailbox_bytes
    )
}

/// A handle on one actor for a handler's work outside its calls (a server's connections, a
/// process's output, a timer): delivers to its mailbox and keeps the run going while the work
/// lasts. It holds the runtime weakly: once the runtime is gone, deliveries fail.
#[derive(Clone)]
pub struct OutsideInput {
    shared: Weak<Shared>,
    id: Arc<str>,
}

/// Keeps the runtime from counting as quiescent (`Runtime::quiescent`, the end of `theater
/// run`) until dropped: work of a handler that will still deliver to its actor.
pub struct KeepAlive(#[allow(dead_code)] Work);

impl ActorCtx {
    /// A handle for delivering input from outside (a connection, a process's output, a timer)
    /// to this actor's mailbox, recorded like any message when the actor handles it.
    pub fn outside_input(&self) -> OutsideInput {
        OutsideInput {
            shared: self
                .shared()
                .map_or_else(|_| Weak::new(), |s| Arc::downgrade(&s)),
            id: self.id.clone(),
        }
    }
}

impl Recovery<'_> {
    /// The recovering actor's [`OutsideInput`], to start again what served it from outside.
    pub fn outside_input(&self) -> Option<OutsideInput> {
        self.runtime.downcast_ref::<OutsideInput>().cloned()
    }
}

impl OutsideInput {
    pub(crate) fn of(shared: &Arc<Shared>, id: Arc<str>) -> OutsideInput {
        OutsideInput {
            shared: Arc::downgrade(shared),
            id,
        }
    }

    /// The actor's id.
    pub fn actor_id(&self) -> &str {
        &self.id
    }

    fn shared(&self) -> Result<Arc<Shared>, String> {
        self.shared
            .upgrade()
            .ok_or_else(|| "the runtime is shutting down".to_owned())
    }

    fn target(&self) -> Result<(Arc<Shared>, Arc<Cell>), String> {
        let shared = self.shared()?;
        let cell = shared
            .cell(&self.id)
            .ok_or_else(|| format!("actor {} is not running", short_id(&self.id)))?;
        Ok((shared, cell))
    }

    /// Whether the runtime still runs (the actor may have stopped).
    pub fn runtime_running(&self) -> bool {
        self.shared.strong_count() > 0
    }

    /// Whether the actor is running and its component has `export`.
    pub fn exports(&self, export: &'static ExportDecl) -> bool {
        self.target().is_ok_and(|(_, cell)| cell.exports(export))
    }

    /// The largest message the actor takes (its `[messaging] max_message_bytes`), while it runs.
    pub fn max_message_bytes(&self) -> Option<u64> {
        self.target()
            .ok()
            .map(|(_, cell)| u64::from(cell.messaging.max_message_bytes))
    }

    /// Queues `msg` for the actor's `handle-send`; waits for room in a full mailbox up to the
    /// default request timeout.
    pub async fn send(&self, msg: Vec<u8>) -> Result<(), String> {
        let shared = self.shared()?;
        let id = shared.next_message_id();
        shared
            .deliver(
                None,
                &self.id,
                Message::Send(msg),
                Some(id),
                Duration::from_millis(crate::manifest::DEFAULT_REQUEST_TIMEOUT_MS),
            )
            .await
    }

    /// Queues `call` in the actor's mailbox, waiting up to `wait` for room (zero: not at all).
    /// A call that cannot be queued is dropped, and its answer says it was not made.
    pub async fn deliver(&self, call: Call, wait: Duration) -> Result<(), String> {
        self.shared()?
            .deliver(None, &self.id, Message::HandlerCall(call.0), None, wait)
            .await
    }

    /// A [`KeepAlive`] for work that will deliver to the actor; none once the runtime is gone.
    pub fn keep_alive(&self) -> Option<KeepAlive> {
        Some(KeepAlive(self.shared.upgrade()?.busy.begin()))
    }
}

#[cfg(test)]
mod tests {
    /// The stack-formatted ids read as `format!("{prefix:08x}-{n:x}")` would write them.
    #[test]
    fn message_ids_are_the_prefix_and_the_count_in_hex() {
        for (prefix, n) in [
            (0, 0),
            (0x1234abcd, 1),
            (u32::MAX, 15),
            (7, 16),
            (0xdeadbeef, u64::MAX),
        ] {
            assert_eq!(
                &*super::message_id(prefix, n),
                format!("{prefix:08x}-{n:x}"),
                "{prefix} {n}"
            );
        }
    }
}
