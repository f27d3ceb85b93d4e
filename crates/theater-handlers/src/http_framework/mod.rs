//! `theater:simple/http-framework` and the `http-handlers` exports: HTTP/1.1 servers whose
//! requests the actor answers. Granted by the `http-framework` handler.
//!
//! A server binds only an address and port the handler's `listen` allows (loopback, any port,
//! by default). Each request, each middleware pass and each websocket event becomes a call of
//! one of the actor's `http-handlers` exports, delivered through its mailbox in order with its
//! other messages and recorded like them, so an HTTP actor replays with no server and no
//! network. The response goes back to the client.
//!
//! What a client can cost is bounded: at most `max_pending` requests of a server wait for the
//! actor at once, and past that (or with the actor's mailbox full) a request gets a 503 at once;
//! a body is at most `max_body_bytes`; a request that waits longer than `request_timeout_ms`
//! gets a 503; at most `max_connections` connections are open. A guest error or trap is a 500
//! that names nothing internal. Servers stop when the actor's run ends, and a running server
//! keeps `theater run` from ending as quiescent. TLS (rustls, ring) reads its certificate and
//! key beneath the handler's `root`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use theater::plugin::chain::HostResult;
use theater::plugin::wasmtime;
use theater::plugin::wasmtime::StoreContextMut;
use theater_files::guest::GuestPath;
use tokio::sync::mpsc;

use theater::plugin::bindings::theater::simple::http_types::{
    HttpRequest, HttpResponse, MiddlewareResult, ServerConfig, ServerInfo, TlsConfig,
};
use theater::plugin::bindings::theater::simple::websocket_types::WebsocketMessage;
use theater::plugin::{ActorCtx, ExportDecl, HandlerExport, LockExt, State};
use theater::plugin::{
    ExitKind, Handler, HostFuture, HostLinker, RecordAs, Recovery, Refusal, RootSetting,
    SettingKey, SettingsInput, at_most, positive,
};

mod routes;
mod serve;

use routes::{Middleware, Pattern, Route, Table, WebsocketRoute};
use serve::{Outgoing, Running, launch};

type Answer<T> = (Result<T, String>,);

/// The exports a server calls: each request (and its middleware) and each websocket's life,
/// with the handler id the actor registered.
const HTTP_HANDLERS: &str = "theater:simple/http-handlers";
static HANDLE_REQUEST: HandlerExport<(u64, HttpRequest), (State, (HttpResponse,))> =
    HandlerExport::new(
        HTTP_HANDLERS,
        "handle-request",
        "theater:simple/http-handlers.handle-request",
    );
static HANDLE_MIDDLEWARE: HandlerExport<(u64, HttpRequest), (State, (MiddlewareResult,))> =
    HandlerExport::new(
        HTTP_HANDLERS,
        "handle-middleware",
        "theater:simple/http-handlers.handle-middleware",
    );
static WEBSOCKET_CONNECT: HandlerExport<(u64, u64, String, Option<String>), (State,)> =
    HandlerExport::new(
        HTTP_HANDLERS,
        "handle-websocket-connect",
        "theater:simple/http-handlers.handle-websocket-connect",
    );
/// A websocket message in (server's handler, connection, message); the messages to send back.
type WebsocketMessageExport =
    HandlerExport<(u64, u64, WebsocketMessage), (State, (Vec<WebsocketMessage>,))>;
static WEBSOCKET_MESSAGE: WebsocketMessageExport = HandlerExport::new(
    HTTP_HANDLERS,
    "handle-websocket-message",
    "theater:simple/http-handlers.handle-websocket-message",
);
static WEBSOCKET_DISCONNECT: HandlerExport<(u64, u64), (State,)> = HandlerExport::new(
    HTTP_HANDLERS,
    "handle-websocket-disconnect",
    "theater:simple/http-handlers.handle-websocket-disconnect",
);

pub const DEFAULT_MAX_SERVERS: u64 = 8;
pub const DEFAULT_MAX_PENDING: u64 = 64;
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 30_000;
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1 << 20;
pub const DEFAULT_MAX_CONNECTIONS: u64 = 256;
/// Routes and middleware per server.
pub const MAX_ROUTES: usize = 1024;
/// Messages a websocket connection holds for sending before `send-websocket-message` refuses.
pub const WEBSOCKET_QUEUE: usize = 64;
/// The longest path, method or handler name a guest may register.
pub const MAX_NAME_BYTES: usize = 4096;
/// Ceilings of the counted settings, so that no manifest sizes a table past reason.
const MAX_PENDING_CEILING: u64 = 1 << 20;
const MAX_CONNECTIONS_CEILING: u64 = 1 << 16;
/// How long a client may take to send a request's headers (and, kept alive, the next ones).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A certificate or key file larger than this is not one.
const MAX_PEM_BYTES: u64 = 1 << 20;
/// Headers through which a route's path parameters reach the actor; a client's own are dropped.
pub const PARAM_HEADER_PREFIX: &str = "x-theater-param-";

/// An address and port (any, when `None`) a server may bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenRule {
    pub host: IpAddr,
    pub port: Option<u16>,
}

impl ListenRule {
    fn parse(text: &str) -> Result<ListenRule, String> {
        let bad = || {
            format!(
                "`listen` entry {text:?} is not ADDRESS:PORT (an IP address, and a port or `*`; IPv6 in brackets)"
            )
        };
        let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
        let host = ip_of(host).ok_or_else(bad)?;
        let port = match port {
            "*" => None,
            p => Some(p.parse().map_err(|_| bad())?),
        };
        Ok(ListenRule { host, port })
    }

    fn allows(&self, host: IpAddr, port: u16) -> bool {
        self.host == host && self.port.is_none_or(|p| p == port)
    }

    fn covers(&self, child: &ListenRule) -> bool {
        self.host == child.host && (self.port.is_none() || self.port == child.port)
    }
}

impl std::fmt::Display for ListenRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let port = self.port.map_or("*".to_owned(), |p| p.to_string());
        match self.host {
            IpAddr::V6(h) => write!(f, "[{h}]:{port}"),
            IpAddr::V4(h) => write!(f, "{h}:{port}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct HttpFrameworkSettings {
    /// Where servers may listen; unset: loopback (IPv4 and IPv6), any port.
    pub listen: Option<Vec<ListenRule>>,
    /// Beneath which TLS certificates and keys are read.
    pub root: RootSetting,
    pub max_servers: Option<u64>,
    pub max_pending: Option<u64>,
    pub request_timeout_ms: Option<u64>,
    pub max_body_bytes: Option<u64>,
    pub max_connections: Option<u64>,
}

impl HttpFrameworkSettings {
    pub fn listen(&self) -> Vec<ListenRule> {
        self.listen.clone().unwrap_or_else(|| {
            vec![
                ListenRule {
                    host: IpAddr::V4(Ipv4Addr::LOCALHOST),
                    port: None,
                },
                ListenRule {
                    host: IpAddr::V6(Ipv6Addr::LOCALHOST),
                    port: None,
                },
            ]
        })
    }
    fn max_servers(&self) -> u64 {
        self.max_servers.unwrap_or(DEFAULT_MAX_SERVERS)
    }
    fn max_pending(&self) -> u64 {
        self.max_pending.unwrap_or(DEFAULT_MAX_PENDING)
    }
    fn request_timeout_ms(&self) -> u64 {
        self.request_timeout_ms
            .unwrap_or(DEFAULT_REQUEST_TIMEOUT_MS)
    }
    fn max_body_bytes(&self) -> u64 {
        self.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES)
    }
    fn max_connections(&self) -> u64 {
        self.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS)
    }
}

/// A positive setting no larger than `ceiling`.
fn at_most_ceiling(table: &toml::Table, key: &str, ceiling: u64) -> Result<Option<u64>, String> {
    match positive(table, key)? {
        Some(n) if n > ceiling => Err(format!("`{key}` may be at most {ceiling}")),
        n => Ok(n),
    }
}

pub struct HttpFrameworkHandler;

impl Handler for HttpFrameworkHandler {
    type Settings = HttpFrameworkSettings;
    type State = HttpFrameworkState;

    fn name(&self) -> &'static str {
        "http-framework"
    }
    fn interfaces(&self) -> &'static [&'static str] {
        &["theater:simple/http-framework"]
    }
    fn keys(&self) -> &'static [SettingKey] {
        &[
            SettingKey {
                key: "listen",
                rule: "every entry covered by one of the parent's (same address; the parent's port or `*`); unset: the parent's",
            },
            SettingKey {
                key: "root",
                rule: "beneath the parent's root, opened beneath it (kernel-confined); unset: the parent's root",
            },
            SettingKey {
                key: "max_servers",
                rule: "at most the parent's; unset: the parent's",
            },
            SettingKey {
                key: "max_pending",
                rule: "at most the parent's; unset: the parent's",
            },
            SettingKey {
                key: "request_timeout_ms",
                rule: "at most the parent's; unset: the parent's",
            },
            SettingKey {
                key: "max_body_bytes",
                rule: "at most the parent's; unset: the parent's",
            },
            SettingKey {
                key: "max_connections",
                rule: "at most the parent's; unset: the parent's",
            },
        ]
    }
    fn parse(&self, input: &SettingsInput<'_>) -> Result<HttpFrameworkSettings, String> {
        let table = input.table;
        let listen = match table.get("listen") {
            None => None,
            Some(v) => Some(
                v.as_array()
                    .and_then(|a| a.iter().map(|v| v.as_str()).collect::<Option<Vec<_>>>())
                    .ok_or("`listen` must be a list of \"ADDRESS:PORT\" strings (PORT may be `*`)")?
                    .into_iter()
                    .map(ListenRule::parse)
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        Ok(HttpFrameworkSettings {
            listen,
            root: RootSetting::parse(input, None)?,
            max_servers: positive(table, "max_servers")?,
            max_pending: at_most_ceiling(table, "max_pending", MAX_PENDING_CEILING)?,
            request_timeout_ms: positive(table, "request_timeout_ms")?,
            max_body_bytes: positive(table, "max_body_bytes")?,
            max_connections: at_most_ceiling(table, "max_connections", MAX_CONNECTIONS_CEILING)?,
        })
    }
    fn attenuate(
        &self,
        parent: &HttpFrameworkSettings,
        child: HttpFrameworkSettings,
    ) -> Result<HttpFrameworkSettings, Refusal> {
        const H: &str = "http-framework";
        let parent_listen = parent.listen();
        let listen = match child.listen {
            None => parent_listen,
            Some(rules) => {
                if let Some(wider) = rules
                    .iter()
                    .find(|r| !parent_listen.iter().any(|p| p.covers(r)))
                {
                    return Err(Refusal::handler(
                        H,
                        "listen",
                        format!("{wider} is not within the parent's listen"),
                    ));
                }
                rules
            }
        };
        Ok(HttpFrameworkSettings {
            listen: Some(listen),
            max_servers: at_most(H, "max_servers", child.max_servers, parent.max_servers())?,
            max_pending: at_most(H, "max_pending", child.max_pending, parent.max_pending())?,
            request_timeout_ms: at_most(
                H,
                "request_timeout_ms",
                child.request_timeout_ms,
                parent.request_timeout_ms(),
            )?,
            max_body_bytes: at_most(
                H,
                "max_body_bytes",
                child.max_body_bytes,
                parent.max_body_bytes(),
            )?,
            max_connections: at_most(
                H,
                "max_connections",
                child.max_connections,
                parent.max_connections(),
            )?,
            root: child.root.within(&parent.root, H)?,
        })
    }
    fn exports(&self) -> &'static [&'static ExportDecl] {
        static EXPORTS: [&ExportDecl; 5] = [
            HANDLE_REQUEST.decl(),
            HANDLE_MIDDLEWARE.decl(),
            WEBSOCKET_CONNECT.decl(),
            WEBSOCKET_MESSAGE.decl(),
            WEBSOCKET_DISCONNECT.decl(),
        ];
        &EXPORTS
    }
    fn link(&self, linker: &mut HostLinker<'_>) -> wasmtime::Result<()> {
        let mut http = linker.interface("theater:simple/http-framework")?;
        http.func("create-server", RecordAs::Value, create_server)?;
        http.func("get-server-info", RecordAs::Value, get_server_info)?;
        http.func("start-server", RecordAs::Value, start_server)?;
        http.func("stop-server", RecordAs::Value, stop_server)?;
        http.func("destroy-server", RecordAs::Value, destroy_server)?;
        http.func("register-handler", RecordAs::Value, register_handler)?;
        http.func("add-route", RecordAs::Value, add_route)?;
        http.func("remove-route", RecordAs::Value, remove_route)?;
        http.func("add-middleware", RecordAs::Value, add_middleware)?;
        http.func("remove-middleware", RecordAs::Value, remove_middleware)?;
        http.func("enable-websocket", RecordAs::Value, enable_websocket)?;
        http.func(
            "send-websocket-message",
            RecordAs::Value,
            send_websocket_message,
        )?;
        http.func("close-websocket", RecordAs::Value, close_websocket)?;
        Ok(())
    }
    fn new_state(&self, _: &HttpFrameworkSettings) -> HttpFrameworkState {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        HttpFrameworkState {
            next_id: 0,
            next_connection: Arc::new(AtomicU64::new(seed)),
            servers: BTreeMap::new(),
            handlers: BTreeMap::new(),
        }
    }
    fn on_recover(
        &self,
        settings: &HttpFrameworkSettings,
        state: &mut HttpFrameworkState,
        recovery: &Recovery<'_>,
    ) -> Result<(), String> {
        state.recover(settings, recovery)
    }
    fn on_exit(&self, state: &mut HttpFrameworkState, _how: ExitKind) {
        // Dropping a running server stops it and frees its port.
        state.servers.clear();
    }
}

/// An actor's servers and handler names.
pub struct HttpFrameworkState {
    /// One counter for servers, handlers, routes and middleware: an id names one thing.
    next_id: u64,
    /// Websocket connection ids, for every server of the actor. Seeded from the clock, so that
    /// an id a guest kept from before a restart or a crash never names a new client.
    next_connection: Arc<AtomicU64>,
    servers: BTreeMap<u64, Server>,
    handlers: BTreeMap<u64, String>,
}

impl HttpFrameworkState {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn server(&mut self, id: u64) -> Result<&mut Server, String> {
        self.servers
            .get_mut(&id)
            .ok_or_else(|| format!("no server {id}"))
    }

    fn handler(&self, id: u64) -> Result<(), String> {
        if self.handlers.contains_key(&id) {
            Ok(())
        } else {
            Err(format!(
                "no handler {id}; register it with register-handler"
            ))
        }
    }
}

struct Server {
    host: IpAddr,
    /// As asked (0: any free port).
    port: u16,
    tls: Option<TlsConfig>,
    table: Arc<Mutex<Table>>,
    running: Option<Running>,
    /// The actor's websocket connection counter.
    next_connection: Arc<AtomicU64>,
}

/// What a call needs of the calling actor.
struct Caller<'a> {
    settings: HttpFrameworkSettings,
    state: &'a mut HttpFrameworkState,
}

fn caller<'a>(store: &'a mut StoreContextMut<'_, ActorCtx>) -> Result<Caller<'a>, String> {
    let ctx = store.data_mut();
    let settings = ctx
        .settings::<HttpFrameworkSettings>()
        .cloned()
        .ok_or("the http-framework handler is not granted")?;
    let state = ctx
        .handler_state::<HttpFrameworkState>()
        .ok_or("the http-framework handler has no state for this actor")?;
    Ok(Caller { settings, state })
}

/// The address a config asks for: an IP address (or `localhost`), 127.0.0.1 when unset.
fn host_of(config: &ServerConfig) -> Result<IpAddr, String> {
    match config.host.as_deref() {
        None => Ok(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        Some(host) => ip_of(host).ok_or_else(|| format!("host {host:?} is not an IP address")),
    }
}

/// An address as `listen` and a server config write it: an IP address (IPv6 may be in
/// brackets), or `localhost` for 127.0.0.1. Names are not resolved.
fn ip_of(host: &str) -> Option<IpAddr> {
    if host == "localhost" {
        return Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

fn listen_allows(settings: &HttpFrameworkSettings, host: IpAddr, port: u16) -> Result<(), String> {
    let rules = settings.listen();
    if rules.iter().any(|r| r.allows(host, port)) {
        return Ok(());
    }
    let asked = if port == 0 {
        format!("{host} on any port")
    } else {
        SocketAddr::new(host, port).to_string()
    };
    let rules: Vec<String> = rules.iter().map(ToString::to_string).collect();
    Err(format!(
        "{asked} is not in the http-framework handler's `listen` ({})",
        rules.join(", ")
    ))
}

/// The host functions' work on the actor's state, apart from the store, so that a recovery
/// can run the chain's calls through the same code.
impl HttpFrameworkState {
    fn create_server(
        &mut self,
        settings: &HttpFrameworkSettings,
        config: ServerConfig,
    ) -> Result<u64, String> {
        let host = host_of(&config)?;
        let port = config.port.unwrap_or(0);
        listen_allows(settings, host, port)?;
        if let Some(tls) = &config.tls_config {
            GuestPath::parse(&tls.cert_path)?;
            GuestPath::parse(&tls.key_path)?;
        }
        if self.servers.len() as u64 >= settings.max_servers() {
            return Err(format!(
                "the actor has {} servers already, its http-framework max_servers",
                self.servers.len()
            ));
        }
        let id = self.id();
        self.servers.insert(
            id,
            Server {
                host,
                port,
                tls: config.tls_config,
                table: Arc::default(),
                running: None,
                next_connection: self.next_connection.clone(),
            },
        );
        Ok(id)
    }

    fn server_info(&mut self, id: u64) -> Result<ServerInfo, String> {
        let server = self.server(id)?;
        let table = server.table.locked();
        Ok(ServerInfo {
            id,
            port: server.running.as_ref().map_or(server.port, |r| r.port),
            host: server.host.to_string(),
            running: server.running.is_some(),
            routes_count: table.routes.len() as u32,
            middleware_count: table.middleware.len() as u32,
            websocket_enabled: table.websocket.is_some(),
        })
    }

    fn register_handler(&mut self, name: String) -> Result<u64, String> {
        short("handler name", &name)?;
        if self.handlers.len() >= MAX_ROUTES {
            return Err(format!("the actor has {MAX_ROUTES} handlers already"));
        }
        let id = self.id();
        self.handlers.insert(id, name);
        Ok(id)
    }

    /// Checks the server, the handlers and the table's size, then changes the table; the
    /// change gets the next id, taken only if it succeeds.
    fn with_table<T>(
        &mut self,
        server: u64,
        handlers: &[u64],
        change: impl FnOnce(&mut Table, u64) -> Result<T, String>,
    ) -> Result<T, String> {
        for handler in handlers {
            self.handler(*handler)?;
        }
        let id = self.next_id + 1;
        let table = self.server(server)?.table.clone();
        let mut table = table.locked();
        if table.routes.len() + table.middleware.len() >= MAX_ROUTES {
            return Err(format!(
                "server {server} has {MAX_ROUTES} routes and middleware already"
            ));
        }
        let answer = change(&mut table, id)?;
        self.next_id = id;
        Ok(answer)
    }

    fn add_route(
        &mut self,
        server: u64,
        path: String,
        method: String,
        handler: u64,
    ) -> Result<u64, String> {
        short("path", &path)?;
        short("method", &method)?;
        let pattern = Pattern::parse(&path)?;
        let method = method.to_ascii_uppercase();
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic() || b == b'*') {
            return Err(format!("method {method:?} is not an HTTP method (or `*`)"));
        }
        self.with_table(server, &[handler], |table, id| {
            if table
                .routes
                .iter()
                .any(|r| r.method == method && r.pattern == pattern)
            {
                return Err(format!(
                    "server {server} has a {method} route for {path:?} already"
                ));
            }
            table.routes.push(Route {
                id,
                method,
                pattern,
                handler,
            });
            Ok(id)
        })
    }

    fn add_middleware(&mut self, server: u64, path: String, handler: u64) -> Result<u64, String> {
        short("path", &path)?;
        let prefix = Pattern::parse(&path)?;
        self.with_table(server, &[handler], |table, id| {
            table.middleware.push(Middleware {
                id,
                prefix,
                handler,
            });
            Ok(id)
        })
    }

    /// Removes the route (or middleware) `id` from whichever server has it.
    fn remove(&mut self, id: u64, middleware: bool) -> Result<(), String> {
        for server in self.servers.values() {
            let mut table = server.table.locked();
            let found = if middleware {
                let i = table.middleware.iter().position(|m| m.id == id);
                i.map(|i| drop(table.middleware.remove(i)))
            } else {
                let i = table.routes.iter().position(|r| r.id == id);
                i.map(|i| drop(table.routes.remove(i)))
            };
            if found.is_some() {
                return Ok(());
            }
        }
        Err(format!(
            "no {} {id}",
            if middleware { "middleware" } else { "route" }
        ))
    }

    fn enable_websocket(
        &mut self,
        server: u64,
        path: String,
        connect: Option<u64>,
        message: u64,
        disconnect: Option<u64>,
    ) -> Result<(), String> {
        short("path", &path)?;
        let path = Pattern::parse(&path)?;
        let handlers: Vec<u64> = [connect, Some(message), disconnect]
            .into_iter()
            .flatten()
            .collect();
        self.with_table(server, &handlers, |table, _| {
            table.websocket = Some(WebsocketRoute {
                path,
                connect,
                message,
                disconnect,
            });
            Ok(())
        })
    }

    /// The running server, taken out to be closed.
    fn stop_server(&mut self, id: u64) -> Result<Running, String> {
        self.server(id)?
            .running
            .take()
            .ok_or_else(|| format!("server {id} is not running"))
    }

    /// Forgets the server; returns it if it was running, to be closed.
    fn destroy_server(&mut self, id: u64) -> Result<Option<Running>, String> {
        self.servers
            .remove(&id)
            .map(|s| s.running)
            .ok_or_else(|| format!("no server {id}"))
    }

    /// The queue of websocket `connection` on running `server`.
    fn connection(
        &mut self,
        server: u64,
        connection: u64,
    ) -> Result<mpsc::Sender<Outgoing>, String> {
        let running = self
            .server(server)?
            .running
            .as_ref()
            .ok_or_else(|| format!("server {server} is not running"))?;
        running
            .live
            .connections
            .locked()
            .get(&connection)
            .cloned()
            .ok_or_else(|| format!("server {server} has no open websocket connection {connection}"))
    }

    /// Rebuilds the servers the chain's calls made, and starts again those that were running,
    /// on the ports they had.
    fn recover(
        &mut self,
        settings: &HttpFrameworkSettings,
        recovery: &Recovery<'_>,
    ) -> Result<(), String> {
        let mut running: BTreeMap<u64, u16> = BTreeMap::new();
        for call in &recovery.host_calls {
            let HostResult::Value(result) = &call.result else {
                continue;
            };
            let params = &call.params;
            // Only calls that succeeded changed anything; each is run again here and must
            // answer what it answered then.
            macro_rules! again {
                ($params:ty, $answer:ty, |$p:pat_param| $run:expr) => {{
                    let (recorded,): Answer<$answer> = decode(result, &call.function)?;
                    if let Ok(recorded) = recorded {
                        let $p: $params = decode(params, &call.function)?;
                        let now: Result<$answer, String> = $run;
                        if now.as_ref().ok() != Some(&recorded) {
                            return Err(format!(
                                "`{}` answers {now:?} now where the chain has {recorded:?}",
                                call.function
                            ));
                        }
                    }
                }};
            }
            match &*call.function {
                "create-server" => again!((ServerConfig,), u64, |(config,)| self
                    .create_server(settings, config)),
                "register-handler" => {
                    again!((String,), u64, |(name,)| self.register_handler(name))
                }
                "add-route" => again!((u64, String, String, u64), u64, |(
                    server,
                    path,
                    method,
                    handler,
                )| self
                    .add_route(server, path, method, handler)),
                "add-middleware" => again!((u64, String, u64), u64, |(server, path, handler)| self
                    .add_middleware(server, path, handler)),
                "remove-route" => again!((u64,), (), |(id,)| self.remove(id, false)),
                "remove-middleware" => again!((u64,), (), |(id,)| self.remove(id, true)),
                "enable-websocket" => again!(
                    (u64, String, Option<u64>, u64, Option<u64>),
                    (),
                    |(server, path, connect, message, disconnect)| self
                        .enable_websocket(server, path, connect, message, disconnect)
                ),
                "start-server" => {
                    let (recorded,): Answer<u16> = decode(result, &call.function)?;
                    let (id,): (u64,) = decode(params, &call.function)?;
                    if let Ok(port) = recorded {
                        running.insert(id, port);
                    }
                }
                "stop-server" | "destroy-server" => {
                    let (recorded,): Answer<()> = decode(result, &call.function)?;
                    let (id,): (u64,) = decode(params, &call.function)?;
                    if recorded.is_ok() {
                        running.remove(&id);
                        if call.function == "destroy-server" {
                            // Nothing of a recovery runs yet.
                            drop(self.destroy_server(id)?);
                        }
                    }
                }
                _ => {}
            }
        }
        let input = recovery
            .outside_input()
            .ok_or("the runtime's services are not at hand")?;
        for (id, port) in running {
            let server = self.server(id)?;
            let address = SocketAddr::new(server.host, port);
            let started = launch(input.clone(), settings, server, port)
                .map_err(|e| format!("server {id} cannot serve {address} again: {e}"))?;
            server.running = Some(started);
        }
        Ok(())
    }
}

/// Refuses a guest's string longer than [`MAX_NAME_BYTES`].
fn short(what: &str, text: &str) -> Result<(), String> {
    if text.len() > MAX_NAME_BYTES {
        return Err(format!(
            "a {what} of {} bytes is longer than {MAX_NAME_BYTES}",
            text.len()
        ));
    }
    Ok(())
}

fn decode<T: theater::plugin::Recordable>(bytes: &[u8], function: &str) -> Result<T, String> {
    theater::plugin::decode(bytes).map_err(|e| format!("the chain's `{function}` call: {e}"))
}

/// A host function that works on the actor's state only.
macro_rules! state_fn {
    ($name:ident, ($($p:ident: $t:ty),*) -> $r:ty, |$c:ident| $body:expr) => {
        fn $name(
            mut store: StoreContextMut<'_, ActorCtx>,
            ($($p,)*): ($($t,)*),
        ) -> HostFuture<'_, Answer<$r>> {
            Box::pin(async move {
                let result = caller(&mut store).and_then(|$c| $body);
                Ok((result,))
            })
        }
    };
}

state_fn!(create_server, (config: ServerConfig) -> u64, |c| c
    .state
    .create_server(&c.settings, config));
state_fn!(get_server_info, (id: u64) -> ServerInfo, |c| c.state.server_info(id));
fn stop_server(
    mut store: StoreContextMut<'_, ActorCtx>,
    (id,): (u64,),
) -> HostFuture<'_, Answer<()>> {
    Box::pin(async move {
        let result = match caller(&mut store).and_then(|c| c.state.stop_server(id)) {
            Ok(running) => {
                running.close().await;
                Ok(())
            }
            Err(e) => Err(e),
        };
        Ok((result,))
    })
}

fn destroy_server(
    mut store: StoreContextMut<'_, ActorCtx>,
    (id,): (u64,),
) -> HostFuture<'_, Answer<()>> {
    Box::pin(async move {
        let result = match caller(&mut store).and_then(|c| c.state.destroy_server(id)) {
            Ok(Some(running)) => {
                running.close().await;
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        Ok((result,))
    })
}
state_fn!(register_handler, (name: String) -> u64, |c| c.state.register_handler(name));
state_fn!(add_route, (server: u64, path: String, method: String, handler: u64) -> u64, |c| c
    .state
    .add_route(server, path, method, handler));
state_fn!(remove_route, (id: u64) -> (), |c| c.state.remove(id, false));
state_fn!(add_middleware, (server: u64, path: String, handler: u64) -> u64, |c| c
    .state
    .add_middleware(server, path, handler));
state_fn!(remove_middleware, (id: u64) -> (), |c| c.state.remove(id, true));
state_fn!(
    enable_websocket,
    (server: u64, path: String, connect: Option<u64>, message: u64, disconnect: Option<u64>) -> (),
    |c| c.state.enable_websocket(server, path, connect, message, disconnect)
);
state_fn!(
    send_websocket_message,
    (server: u64, id: u64, message: WebsocketMessage) -> (),
    |c| c.state.connection(server, id).and_then(|queue| {
        let len = serve::message_len(&message);
        if len as u64 > c.settings.max_body_bytes() {
            return Err(format!(
                "a websocket message of {len} bytes is over the http-framework max_body_bytes"
            ));
        }
        queue.try_send(Outgoing::Send(message)).map_err(|_| {
            format!(
                "websocket connection {id} has {WEBSOCKET_QUEUE} messages waiting to be sent, or is closing"
            )
        })
    })
);
state_fn!(close_websocket, (server: u64, id: u64) -> (), |c| c
.state
.connection(server, id)
.map(|queue| {
    // A full queue closes when the connection sees the server stop or the client go.
    let _ = queue.try_send(Outgoing::Close);
}));

fn start_server(
    mut store: StoreContextMut<'_, ActorCtx>,
    (id,): (u64,),
) -> HostFuture<'_, Answer<u16>> {
    Box::pin(async move {
        let input = store.data().outside_input();
        let result = (|| {
            let c = caller(&mut store)?;
            let server = c.state.server(id)?;
            if let Some(running) = &server.running {
                return Err(format!(
                    "server {id} is running already, on port {}",
                    running.port
                ));
            }
            let running = launch(input, &c.settings, server, server.port)?;
            let port = running.port;
            server.running = Some(running);
            Ok(port)
        })();
        Ok((result,))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_rules_parse_and_cover() {
        let any = ListenRule::parse("127.0.0.1:*").unwrap();
        let one = ListenRule::parse("127.0.0.1:8080").unwrap();
        let v6 = ListenRule::parse("[::1]:*").unwrap();
        assert!(any.covers(&one) && !one.covers(&any) && !any.covers(&v6));
        assert!(one.allows("127.0.0.1".parse().unwrap(), 8080));
        assert!(!one.allows("127.0.0.1".parse().unwrap(), 0));
        assert!(!any.allows("0.0.0.0".parse().unwrap(), 80));
        assert!(ListenRule::parse("example.com:80").is_err());
        assert!(ListenRule::parse("127.0.0.1").is_err());
        assert_eq!(v6.to_string(), "[::1]:*");
    }
}
