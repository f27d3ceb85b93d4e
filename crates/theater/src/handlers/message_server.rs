//! `theater:simple/message-server-host`: send, request, channels and deferred answers.
//! Granted by the `message-server` handler. The rules live in `crate::messaging`.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::StoreContextMut;

use crate::actor::ActorCtx;
use crate::cell::Message;
use crate::host::{HostFuture, HostLinker, Plain, RecordAs};

type Answer<T> = (Result<T, String>,);

/// The `message-server` handler: no settings; the rules are `crate::messaging`'s.
pub(crate) const HANDLER: Plain = Plain {
    name: "message-server",
    interfaces: &["theater:simple/message-server-host"],
    link: Some(link),
    always_granted: false,
};

fn link(linker: &mut HostLinker<'_>) -> wasmtime::Result<()> {
    let mut host = linker.interface("theater:simple/message-server-host")?;
    host.func("send", RecordAs::Value, send)?;
    host.func("request", RecordAs::Value, request)?;
    host.func("open-channel", RecordAs::Value, open_channel)?;
    host.func("send-on-channel", RecordAs::Value, send_on_channel)?;
    host.func("close-channel", RecordAs::Value, close_channel)?;
    host.func(
        "list-outstanding-requests",
        RecordAs::Value,
        list_outstanding_requests,
    )?;
    host.func("respond-to-request", RecordAs::Value, respond_to_request)?;
    host.func("cancel-request", RecordAs::Value, cancel_request)?;
    Ok(())
}

/// The caller's id, the runtime, a fresh message id (noted for the chain) and its timeout.
type Outgoing = (Arc<str>, Arc<crate::shared::Shared>, Arc<str>, Duration);

fn outgoing(ctx: &mut ActorCtx) -> wasmtime::Result<Outgoing> {
    let shared = ctx.shared()?;
    let id = shared.next_message_id();
    ctx.note.message_id = Some(id.clone());
    let timeout = Duration::from_millis(ctx.manifest.messaging.request_timeout_ms);
    Ok((ctx.id.clone(), shared, id, timeout))
}

fn send(
    mut store: StoreContextMut<'_, ActorCtx>,
    (target, msg): (String, Vec<u8>),
) -> HostFuture<'_, Answer<()>> {
    Box::pin(async move {
        let (me, shared, id, timeout) = outgoing(store.data_mut())?;
        let result = shared
            .deliver(Some(&me), &target, Message::Send(msg), Some(id), timeout)
            .await;
        Ok((result,))
    })
}

fn request(
    mut store: StoreContextMut<'_, ActorCtx>,
    (target, msg): (String, Vec<u8>),
) -> HostFuture<'_, Answer<Vec<u8>>> {
    Box::pin(async move {
        let (me, shared, id, timeout) = outgoing(store.data_mut())?;
        let max_answer = store.data().manifest.messaging.max_message_bytes;
        let lent = store.data_mut().lend_place();
        let answer = shared
            .request(Some(&me), &target, msg, id, timeout, max_answer.into())
            .await;
        store.data_mut().reclaim_place(lent);
        Ok((answer,))
    })
}

fn open_channel(
    mut store: StoreContextMut<'_, ActorCtx>,
    (target, msg): (String, Vec<u8>),
) -> HostFuture<'_, Answer<String>> {
    Box::pin(async move {
        let (me, shared, id, timeout) = outgoing(store.data_mut())?;
        let lent = store.data_mut().lend_place();
        let result = shared.open_channel(&me, &target, msg, id, timeout).await;
        store.data_mut().reclaim_place(lent);
        Ok((result.map(|c| c.to_string()),))
    })
}

fn send_on_channel(
    mut store: StoreContextMut<'_, ActorCtx>,
    (channel, msg): (String, Vec<u8>),
) -> HostFuture<'_, Answer<()>> {
    Box::pin(async move {
        let (me, shared, id, timeout) = outgoing(store.data_mut())?;
        Ok((shared
            .send_on_channel(&me, &channel, msg, id, timeout)
            .await,))
    })
}

fn close_channel(
    mut store: StoreContextMut<'_, ActorCtx>,
    (channel,): (String,),
) -> HostFuture<'_, Answer<()>> {
    Box::pin(async move {
        let (me, shared, id, _) = outgoing(store.data_mut())?;
        Ok((shared.close_channel(&me, &channel, id),))
    })
}

fn list_outstanding_requests(
    mut store: StoreContextMut<'_, ActorCtx>,
    (): (),
) -> HostFuture<'_, (Vec<String>,)> {
    Box::pin(async move {
        let deferred = &mut store.data_mut().deferred;
        deferred.retain(|_, d| !d.reply.abandoned());
        let mut ids: Vec<String> = deferred.keys().map(|id| id.to_string()).collect();
        // Message ids count up, so this is the order the requests arrived in.
        ids.sort_by(|a, b| (a.len(), a).cmp(&(b.len(), b)));
        Ok((ids,))
    })
}

/// Takes the reply of a deferred request, or of the request being handled right now (then
/// `true`).
fn take_reply(ctx: &mut ActorCtx, id: &str) -> Option<(crate::actor::Reply, bool)> {
    if let Some(deferred) = ctx.deferred.remove(id) {
        return Some((deferred.reply, false));
    }
    match &ctx.current_request {
        Some((current, _)) if **current == *id => {
            ctx.current_request.take().map(|(_, r)| (r, true))
        }
        _ => None,
    }
}

fn no_request(id: &str) -> String {
    format!(
        "no outstanding request {id} (it was answered, cancelled, or never deferred by this actor)"
    )
}

fn respond_to_request(
    mut store: StoreContextMut<'_, ActorCtx>,
    (id, response): (String, Vec<u8>),
) -> HostFuture<'_, Answer<()>> {
    Box::pin(async move {
        let result = match take_reply(store.data_mut(), &id) {
            Some((reply, current)) => match reply.answer(response) {
                Ok(()) => Ok(()),
                Err((reply, why)) => {
                    // Still outstanding, where it was: the actor may answer again, within the
                    // limit (or by returning from `handle-request`).
                    let ctx = store.data_mut();
                    let id: std::sync::Arc<str> = id.as_str().into();
                    if current {
                        ctx.current_request = Some((id, reply));
                    } else {
                        ctx.deferred.insert(id, crate::actor::Deferred { reply });
                    }
                    Err(why)
                }
            },
            None => Err(no_request(&id)),
        };
        Ok((result,))
    })
}

fn cancel_request(
    mut store: StoreContextMut<'_, ActorCtx>,
    (id,): (String,),
) -> HostFuture<'_, Answer<()>> {
    Box::pin(async move {
        let ctx = store.data_mut();
        let label = format!("{} ({})", ctx.name, crate::shared::short_id(&ctx.id));
        let result = match take_reply(ctx, &id) {
            Some((reply, _)) => {
                reply.fail(format!("actor {label} cancelled request {id}"));
                Ok(())
            }
            None => Err(no_request(&id)),
        };
        Ok((result,))
    })
}
