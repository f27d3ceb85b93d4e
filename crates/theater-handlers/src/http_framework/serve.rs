//! A running server: the accept loop, each connection (plain or TLS), each request and
//! websocket on its way through the actor's mailbox, and back.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ws::{Message as WsFrame, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request, State as AxumState};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use theater_files::guest::GuestPath;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};

use super::routes::{Pattern, Table, WebsocketRoute};
use super::{
    HANDLE_MIDDLEWARE, HANDLE_REQUEST, HEADER_TIMEOUT, HttpFrameworkSettings, MAX_PEM_BYTES,
    PARAM_HEADER_PREFIX, Server, WEBSOCKET_CONNECT, WEBSOCKET_DISCONNECT, WEBSOCKET_MESSAGE,
    WEBSOCKET_QUEUE, listen_allows,
};
use theater::plugin::LockExt;
use theater::plugin::Returns;
use theater::plugin::bindings::theater::simple::http_types::{
    HttpRequest, HttpResponse, TlsConfig,
};
use theater::plugin::bindings::theater::simple::websocket_types::{MessageType, WebsocketMessage};
use theater::plugin::wasmtime::component::{ComponentNamedList, Lower};
use theater::plugin::{CallFailure, HandlerExport, KeepAlive, OutsideInput, Recordable};

/// A server that is listening. Dropping it stops it: the listener and every connection close.
pub(super) struct Running {
    pub(super) port: u16,
    pub(super) live: Arc<Live>,
    stop: watch::Sender<bool>,
    /// The accept loop, which owns the listener.
    task: Option<tokio::task::JoinHandle<()>>,
    /// The run is not quiescent while a server listens.
    _work: Option<KeepAlive>,
}

impl Running {
    /// Stops it, and returns once its port is closed (so that the actor may bind it again).
    pub(super) async fn close(mut self) {
        let task = self.task.take();
        drop(self);
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = &self.task {
            task.abort();
        }
        self.live.connections.locked().clear();
    }
}

/// What a running server's tasks share.
pub(super) struct Live {
    input: OutsideInput,
    table: Arc<Mutex<Table>>,
    /// Requests waiting for the actor: the bounded queue in front of its mailbox.
    pending: Semaphore,
    connection_slots: Arc<Semaphore>,
    timeout: Duration,
    max_body: usize,
    pub(super) connections: Mutex<HashMap<u64, mpsc::Sender<Outgoing>>>,
    next_connection: Arc<AtomicU64>,
    stop: watch::Receiver<bool>,
}

pub(super) enum Outgoing {
    Send(WebsocketMessage),
    Close,
}

/// Why a request got no answer from the actor.
enum Failure {
    /// The queue or the mailbox is full, or the actor is gone: try again later.
    Unavailable(&'static str),
    /// The request is larger than the actor takes.
    TooLarge,
    /// The guest's error or trap: logged in the chain, never shown to the client.
    Actor,
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self {
            Failure::Unavailable(why) => plain(StatusCode::SERVICE_UNAVAILABLE, why),
            Failure::TooLarge => plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the request is larger than this server takes",
            ),
            Failure::Actor => plain(StatusCode::INTERNAL_SERVER_ERROR, "internal server error"),
        }
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    (status, format!("{text}\n")).into_response()
}

impl Live {
    /// Calls `export` of the actor through its mailbox and waits for its results.
    async fn call<P, O>(
        &self,
        export: &'static HandlerExport<P, O>,
        params: P,
        len: usize,
    ) -> Result<O::Rest, Failure>
    where
        P: ComponentNamedList + Lower + Recordable,
        O: Returns,
        O::Rest: Send,
    {
        if !self.input.runtime_running() {
            return Err(Failure::Unavailable("the server is shutting down"));
        }
        let max = self
            .input
            .max_message_bytes()
            .ok_or(Failure::Unavailable("the actor is not running"))?;
        if !self.input.exports(export.decl()) {
            return Err(Failure::Actor);
        }
        if len > max as usize {
            return Err(Failure::TooLarge);
        }
        let (call, answer) = export.call(params, len);
        // No waiting for room: a full mailbox is a busy actor, and the client hears so now.
        self.input
            .deliver(call, Duration::ZERO)
            .await
            .map_err(|_| Failure::Unavailable("the actor is busy; try again later"))?;
        match answer.await {
            Ok(Ok(rest)) => Ok(rest),
            Ok(Err(CallFailure::Failed)) => Err(Failure::Actor),
            Ok(Err(CallFailure::NotMade)) | Err(_) => {
                Err(Failure::Unavailable("the actor is not running"))
            }
        }
    }
}

fn request_len(request: &HttpRequest) -> usize {
    request.uri.len()
        + request.method.len()
        + request.body.as_ref().map_or(0, Vec::len)
        + request
            .headers
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
}

/// Every request of a running server.
async fn dispatch(AxumState(live): AxumState<Arc<Live>>, request: Request) -> Response {
    match tokio::time::timeout(live.timeout, serve(&live, request)).await {
        Ok(response) => response,
        Err(_) => plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "the actor did not answer in time",
        ),
    }
}

async fn serve(live: &Arc<Live>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    // Looked at under the lock; copied only for an upgrade on its path.
    let websocket = if parts.headers.contains_key(axum::http::header::UPGRADE) {
        let table = live.table.locked();
        table
            .websocket
            .as_ref()
            .filter(|route| route.path.matches(parts.uri.path()).is_some())
            .cloned()
    } else {
        None
    };
    let upgrade = match websocket {
        None => None,
        Some(_) => match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
            Ok(upgrade) => Some(upgrade),
            Err(rejection) => return rejection.into_response(),
        },
    };
    let body = match axum::body::to_bytes(body, live.max_body).await {
        Ok(body) => body,
        Err(_) => return Failure::TooLarge.into_response(),
    };
    // A slot in the queue only once the body is in: a slow upload holds its connection, not
    // the actor's queue.
    let Ok(_waiting) = live.pending.try_acquire() else {
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "the actor has too many requests waiting; try again later",
        );
    };
    let request = HttpRequest {
        method: parts.method.to_string(),
        uri: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.to_string(), ToString::to_string),
        headers: parts
            .headers
            .iter()
            .filter(|(k, _)| !k.as_str().starts_with(PARAM_HEADER_PREFIX))
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: (!body.is_empty()).then(|| body.to_vec()),
    };
    drop(body);
    // Middleware sees every request beneath its path, websocket upgrades included.
    let mut request = match run_middleware(live, request).await {
        Ok(request) => request,
        Err(response) => return response,
    };
    if let (Some(route), Some(upgrade)) = (websocket, upgrade) {
        let Ok(slot) = live.connection_slots.clone().try_acquire_owned() else {
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server has all the connections it takes",
            );
        };
        let path = path_of(&request.uri).to_owned();
        let query = request.uri.split_once('?').map(|(_, q)| q.to_owned());
        let live = live.clone();
        return upgrade
            .max_message_size(live.max_body)
            .max_frame_size(live.max_body)
            .on_upgrade(move |socket| async move {
                run_socket(&live, route, socket, path, query).await;
                drop(slot);
            });
    }
    let routed = live
        .table
        .locked()
        .route(&request.method, path_of(&request.uri));
    let (handler, params) = match routed {
        Ok(found) => found,
        Err(true) => return plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
        Err(false) => return plain(StatusCode::NOT_FOUND, "not found"),
    };
    request
        .headers
        .retain(|(k, _)| !k.to_ascii_lowercase().starts_with(PARAM_HEADER_PREFIX));
    for (name, value) in params {
        request.headers.push((
            format!("{PARAM_HEADER_PREFIX}{}", name.to_ascii_lowercase()),
            value,
        ));
    }
    let len = request_len(&request);
    match live.call(&HANDLE_REQUEST, (handler, request), len).await {
        Ok(response) => to_response(response),
        Err(failure) => failure.into_response(),
    }
}

/// Runs the middleware whose path `request` is at or beneath, in the order added: the request
/// to go on with, or the response that ends it.
async fn run_middleware(live: &Live, mut request: HttpRequest) -> Result<HttpRequest, Response> {
    let middleware: Vec<(u64, Pattern)> = live
        .table
        .locked()
        .middleware
        .iter()
        .map(|m| (m.handler, m.prefix.clone()))
        .collect();
    for (handler, prefix) in middleware {
        if !prefix.prefixes(path_of(&request.uri)) {
            continue;
        }
        let len = request_len(&request);
        match live.call(&HANDLE_MIDDLEWARE, (handler, request), len).await {
            Ok(result) if result.proceed => request = result.request,
            Ok(_) => return Err(plain(StatusCode::FORBIDDEN, "refused")),
            Err(failure) => return Err(failure.into_response()),
        }
    }
    Ok(request)
}

/// The path of a request's URI (origin form, or absolute after a middleware's rewrite).
fn path_of(uri: &str) -> &str {
    let path = if uri.starts_with('/') {
        uri
    } else {
        // `scheme://authority/path`: the path starts at the first `/` after the authority.
        let rest = uri.split_once("://").map_or(uri, |(_, rest)| rest);
        rest.find('/').map_or("/", |i| &rest[i..])
    };
    path.split(['?', '#']).next().unwrap_or("/")
}

/// The actor's response; one it built wrong (a bad status or header) is a 500.
fn to_response(response: HttpResponse) -> Response {
    // 1xx would switch the connection's protocol or confuse it: the actor answers 200–599.
    let status = match StatusCode::from_u16(response.status) {
        Ok(status) if (200..600).contains(&response.status) => status,
        _ => return plain(StatusCode::INTERNAL_SERVER_ERROR, "internal server error"),
    };
    let mut built = Response::new(Body::from(response.body.unwrap_or_default()));
    *built.status_mut() = status;
    for (name, value) in response.headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) else {
            return plain(StatusCode::INTERNAL_SERVER_ERROR, "internal server error");
        };
        built.headers_mut().append(name, value);
    }
    built
}

/// One websocket connection: its events are calls of the actor's websocket exports; what the
/// actor answers, and what it pushes with `send-websocket-message`, goes to the client.
async fn run_socket(
    live: &Arc<Live>,
    route: WebsocketRoute,
    mut socket: WebSocket,
    path: String,
    query: Option<String>,
) {
    let id = live.next_connection.fetch_add(1, Ordering::Relaxed);
    let (tx, outgoing) = mpsc::channel(WEBSOCKET_QUEUE);
    live.connections.locked().insert(id, tx);
    let connected = match route.connect {
        None => true,
        Some(handler) => {
            let len = path.len() + query.as_ref().map_or(0, String::len);
            live.call(&WEBSOCKET_CONNECT, (handler, id, path, query), len)
                .await
                .is_ok()
        }
    };
    if connected {
        converse(live, &route, &mut socket, id, outgoing).await;
    }
    live.connections.locked().remove(&id);
    let _ = socket.send(WsFrame::Close(None)).await;
    if connected && let Some(handler) = route.disconnect {
        let _ = live.call(&WEBSOCKET_DISCONNECT, (handler, id), 0).await;
    }
}

/// Passes a connection's messages to the actor and its answers back, until either side closes
/// or the server stops.
async fn converse(
    live: &Arc<Live>,
    route: &WebsocketRoute,
    socket: &mut WebSocket,
    id: u64,
    mut outgoing: mpsc::Receiver<Outgoing>,
) {
    let mut stop = live.stop.clone();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            out = outgoing.recv() => match out {
                Some(Outgoing::Send(message)) => {
                    if let Some(frame) = to_frame(message)
                        && socket.send(frame).await.is_err()
                    {
                        break;
                    }
                }
                Some(Outgoing::Close) | None => break,
            },
            incoming = socket.recv() => {
                let message = match incoming {
                    Some(Ok(WsFrame::Text(text))) => WebsocketMessage {
                        ty: MessageType::Text,
                        data: None,
                        text: Some(text.to_string()),
                    },
                    Some(Ok(WsFrame::Binary(data))) => WebsocketMessage {
                        ty: MessageType::Binary,
                        data: Some(data.to_vec()),
                        text: None,
                    },
                    // Pings are answered by the server itself.
                    Some(Ok(WsFrame::Ping(_) | WsFrame::Pong(_))) => continue,
                    Some(Ok(WsFrame::Close(_)) | Err(_)) | None => break,
                };
                let len = message_len(&message);
                let replies = live
                    .call(
                        &WEBSOCKET_MESSAGE,
                        (route.message, id, message),
                        len,
                    )
                    .await;
                let Ok(replies) = replies else { break };
                let mut closed = false;
                for reply in replies {
                    if matches!(reply.ty, MessageType::Close) {
                        closed = true;
                        break;
                    }
                    if let Some(frame) = to_frame(reply)
                        && socket.send(frame).await.is_err()
                    {
                        closed = true;
                        break;
                    }
                }
                if closed {
                    break;
                }
            }
        }
    }
}

/// The bytes a websocket message carries, as limits count them.
pub(super) fn message_len(message: &WebsocketMessage) -> usize {
    message.text.as_ref().map_or(0, String::len) + message.data.as_ref().map_or(0, Vec::len)
}

fn to_frame(message: WebsocketMessage) -> Option<WsFrame> {
    let bytes = || {
        message
            .data
            .clone()
            .or_else(|| message.text.clone().map(String::into_bytes))
            .unwrap_or_default()
    };
    Some(match &message.ty {
        MessageType::Text => WsFrame::Text(
            message
                .text
                .clone()
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes()).into_owned())
                .into(),
        ),
        MessageType::Binary => WsFrame::Binary(bytes().into()),
        MessageType::Ping => WsFrame::Ping(bytes().into()),
        MessageType::Pong => WsFrame::Pong(bytes().into()),
        MessageType::Close => WsFrame::Close(None),
        MessageType::Connect | MessageType::Other(_) => return None,
    })
}

/// How long a stopping server's connections get to finish the responses under way (the one to
/// the request whose call stopped the actor, say).
const STOP_GRACE: Duration = Duration::from_secs(1);

/// Accepts connections until told to stop (or aborted): the listener, and so the port, closes
/// at once; each connection finishes its response under way within [`STOP_GRACE`].
async fn accept(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    router: Router,
    live: Arc<Live>,
) {
    let mut stop = live.stop.clone();
    loop {
        let stream = tokio::select! {
            _ = stop.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of descriptors, say: wait a moment rather than spin.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = live.connection_slots.clone().try_acquire_owned() else {
            // At the bound: a plain connection is told so (a TLS one, before its handshake,
            // cannot be), and closed.
            if tls.is_none() {
                let _ = stream.try_write(
                    b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            }
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        let (tls, stop) = (tls.clone(), live.stop.clone());
        tokio::spawn(async move {
            let _slot = slot;
            match tls {
                None => serve_connection(stream, service, stop).await,
                Some(tls) => {
                    let handshake =
                        tokio::time::timeout(Duration::from_secs(10), tls.accept(stream)).await;
                    if let Ok(Ok(stream)) = handshake {
                        serve_connection(stream, service, stop).await;
                    }
                }
            }
        });
    }
}

/// Serves one connection until it ends, or the server stops and the response under way is out.
async fn serve_connection<I>(
    io: I,
    service: TowerToHyperService<Router>,
    mut stop: watch::Receiver<bool>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(64 << 10)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        // A dropped sender (the server's state is gone) is a stop too.
        _ = stop.changed() => {}
    }
    connection.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(STOP_GRACE, connection).await;
}

/// Reads a PEM file beneath the handler's root.
fn read_pem(settings: &HttpFrameworkSettings, path: &str) -> Result<Vec<u8>, String> {
    let root = settings.root.open("http-framework")?;
    root.guest_read(&GuestPath::parse(path)?, MAX_PEM_BYTES)
}

fn tls_acceptor(
    settings: &HttpFrameworkSettings,
    tls: &TlsConfig,
) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let cert = read_pem(settings, &tls.cert_path)?;
    let key = read_pem(settings, &tls.key_path)?;
    let certs = CertificateDer::pem_slice_iter(&cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("certificate {:?}: {e}", tls.cert_path))?;
    if certs.is_empty() {
        return Err(format!(
            "certificate {:?} holds no PEM certificate",
            tls.cert_path
        ));
    }
    let key =
        PrivateKeyDer::from_pem_slice(&key).map_err(|e| format!("key {:?}: {e}", tls.key_path))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("certificate {:?}: {e}", tls.cert_path))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Binds `address`. A port in use is tried again for a moment: a server of this actor that was
/// just dropped (its run ended, and a restart binds the same port) closes it on its next poll.
fn bind(address: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let mut tries = 0;
    loop {
        match std::net::TcpListener::bind(address) {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries < 10 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            bound => return bound,
        }
    }
}

/// Binds `server`'s address on `port` (0: a free one) and starts serving it.
pub(super) fn launch(
    input: OutsideInput,
    settings: &HttpFrameworkSettings,
    server: &Server,
    port: u16,
) -> Result<Running, String> {
    listen_allows(settings, server.host, port)?;
    let tls = server
        .tls
        .as_ref()
        .map(|t| tls_acceptor(settings, t))
        .transpose()?;
    let address = SocketAddr::new(server.host, port);
    let listener = bind(address)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .and_then(TcpListener::from_std)
        .map_err(|e| format!("binding {address}: {e}"))?;
    let bound = listener.local_addr().map_or(port, |a| a.port());
    let (stop, stopped) = watch::channel(false);
    let work = input.keep_alive();
    let live = Arc::new(Live {
        input,
        table: server.table.clone(),
        pending: Semaphore::new(settings.max_pending() as usize),
        connection_slots: Arc::new(Semaphore::new(settings.max_connections() as usize)),
        timeout: Duration::from_millis(settings.request_timeout_ms()),
        max_body: settings.max_body_bytes() as usize,
        connections: Mutex::default(),
        next_connection: server.next_connection.clone(),
        stop: stopped,
    });
    let router = Router::new().fallback(dispatch).with_state(live.clone());
    let task = tokio::spawn(accept(listener, tls, router, live.clone()));
    Ok(Running {
        port: bound,
        live,
        stop,
        task: Some(task),
        _work: work,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_come_from_origin_and_absolute_uris() {
        assert_eq!(path_of("/a/b?x=1"), "/a/b");
        assert_eq!(path_of("http://h:1/a?x"), "/a");
        assert_eq!(path_of("http://h"), "/");
        // A URL in the query is not the path.
        assert_eq!(path_of("/public?next=http://x/admin"), "/public");
    }
}
