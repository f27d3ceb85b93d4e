//! An HTTP server actor: a page, routes with parameters, middleware that checks and middleware
//! that rewrites, a websocket echo with server push, and routes that show what a failing
//! handler costs. `theater new NAME --template http-server` starts from this file.
//!
//! Its init state, if any, is `PORT` or `PORT tls CERT KEY` (paths beneath the handler's
//! `root`); without one it listens on 127.0.0.1:8080.

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "theater:simple/http-server-actor",
    });
}

use bindings::exports::theater::simple::actor::Guest as Actor;
use bindings::exports::theater::simple::http_handlers::Guest as Handlers;
use bindings::theater::simple::http_framework as http;
use bindings::theater::simple::http_types::{
    HttpRequest, HttpResponse, MiddlewareResult, ServerConfig, TlsConfig,
};
use bindings::theater::simple::runtime::log;
use bindings::theater::simple::websocket_types::{MessageType, WebsocketMessage};

type Wire = Option<Vec<u8>>;

/// What the actor keeps between calls: its server, how many requests it has served, and what
/// each registered handler id is for.
struct State {
    server: u64,
    served: u64,
    handlers: Vec<(u64, String)>,
}

impl State {
    fn decode(wire: &Wire) -> Result<State, String> {
        let text = std::str::from_utf8(wire.as_deref().unwrap_or_default())
            .map_err(|_| "the state is not text")?;
        let mut words = text.split_whitespace();
        let mut number = || -> Result<u64, String> {
            words
                .next()
                .and_then(|w| w.parse().ok())
                .ok_or_else(|| format!("the state {text:?} is not `SERVER SERVED ID:NAME...`"))
        };
        let (server, served) = (number()?, number()?);
        let handlers = text
            .split_whitespace()
            .skip(2)
            .filter_map(|w| w.split_once(':'))
            .filter_map(|(id, name)| Some((id.parse().ok()?, name.to_owned())))
            .collect();
        Ok(State {
            server,
            served,
            handlers,
        })
    }

    fn encode(&self) -> Wire {
        let mut text = format!("{} {}", self.server, self.served);
        for (id, name) in &self.handlers {
            text.push_str(&format!(" {id}:{name}"));
        }
        Some(text.into_bytes())
    }

    fn id_of(&self, name: &str) -> u64 {
        self.handlers
            .iter()
            .find(|(_, n)| n == name)
            .map_or(0, |(id, _)| *id)
    }

    fn name(&self, handler: u64) -> &str {
        self.handlers
            .iter()
            .find(|(id, _)| *id == handler)
            .map_or("", |(_, name)| name)
    }
}

const PAGE: &str = r#"<!doctype html>
<title>Theater</title>
<h1>Hello from a Theater actor</h1>
<p>Try <a href="/hello/world">/hello/world</a> and <a href="/count">/count</a>.</p>
<p><input id="say" value="hi"> <button onclick="ws.send(say.value)">send</button></p>
<pre id="out"></pre>
<script>
const ws = new WebSocket(`ws://${location.host}/ws`);
ws.onmessage = (e) => { out.textContent += e.data + "\n"; };
</script>
"#;

fn respond(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> HttpResponse {
    HttpResponse {
        status,
        headers: vec![("content-type".into(), content_type.into())],
        body: Some(body.into()),
    }
}

fn header<'r>(request: &'r HttpRequest, name: &str) -> Option<&'r str> {
    request
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn text(message: impl Into<String>) -> WebsocketMessage {
    WebsocketMessage {
        ty: MessageType::Text,
        data: None,
        text: Some(message.into()),
    }
}

struct Server;

impl Actor for Server {
    fn init(state: Wire, _: (String,)) -> Result<(Wire,), String> {
        let config = String::from_utf8(state.unwrap_or_default()).unwrap_or_default();
        let words: Vec<&str> = config.split_whitespace().collect();
        let port = match words.first() {
            Some(port) => port.parse().map_err(|_| format!("port {port:?} is not a number"))?,
            None => 8080,
        };
        let tls_config = match words.get(1..) {
            Some(["tls", cert, key]) => Some(TlsConfig {
                cert_path: cert.to_string(),
                key_path: key.to_string(),
            }),
            _ => None,
        };
        let scheme = if tls_config.is_some() { "https" } else { "http" };
        let server = http::create_server(&ServerConfig {
            port: Some(port),
            host: None,
            tls_config,
        })?;
        let mut state = State {
            server,
            served: 0,
            handlers: Vec::new(),
        };
        let mut handler = |name: &str| -> Result<u64, String> {
            let id = http::register_handler(name)?;
            state.handlers.push((id, name.to_owned()));
            Ok(id)
        };
        let routes = [
            ("/", "GET", "page"),
            ("/hello/{name}", "GET", "hello"),
            ("/count", "GET", "count"),
            ("/echo", "POST", "echo"),
            ("/work/{n}", "GET", "work"),
            ("/admin", "GET", "admin"),
            ("/fail", "GET", "fail"),
            ("/trap", "GET", "trap"),
        ];
        let mut added = Vec::new();
        for (path, method, name) in routes {
            let route = http::add_route(server, path, method, handler(name)?)?;
            added.push((route, format!("route-{name}")));
        }
        let guard = http::add_middleware(server, "/admin", handler("guard")?)?;
        added.push((guard, "middleware-guard".to_owned()));
        http::add_middleware(server, "/old", handler("rewrite")?)?;
        let (connect, message, disconnect) =
            (handler("ws-connect")?, handler("ws-message")?, handler("ws-disconnect")?);
        http::enable_websocket(server, "/ws", Some(connect), message, Some(disconnect))?;
        // Route and middleware ids, kept beside the handlers' (one counter numbers them all).
        state.handlers.extend(added);
        let port = http::start_server(server)?;
        log(&format!("listening on {scheme}://127.0.0.1:{port}"));
        Ok((state.encode(),))
    }
}

impl Handlers for Server {
    fn handle_request(
        wire: Wire,
        (handler, request): (u64, HttpRequest),
    ) -> Result<(Wire, (HttpResponse,)), String> {
        let mut state = State::decode(&wire)?;
        state.served += 1;
        let response = match state.name(handler) {
            "page" => respond(200, "text/html; charset=utf-8", PAGE),
            "hello" => {
                // A route's parameters arrive as `x-theater-param-NAME` headers.
                let name = header(&request, "x-theater-param-name").unwrap_or("nobody");
                respond(200, "text/plain", format!("hello {name}\n"))
            }
            "count" => respond(200, "text/plain", format!("{} requests\n", state.served)),
            "echo" => respond(200, "application/octet-stream", request.body.unwrap_or_default()),
            "work" => {
                // CPU work, as a slow handler would do.
                let n: u64 = header(&request, "x-theater-param-n")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                let mut x = 0u64;
                for i in 0..n {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
                }
                respond(200, "text/plain", format!("worked {n} {}\n", x % 10))
            }
            "admin" => respond(200, "text/plain", "welcome, admin\n"),
            "fail" => return Err("the fail route always fails".into()),
            "trap" => panic!("the trap route panics"),
            other => return Err(format!("no handler named {other:?}")),
        };
        Ok((state.encode(), (response,)))
    }

    fn handle_middleware(
        wire: Wire,
        (handler, mut request): (u64, HttpRequest),
    ) -> Result<(Wire, (MiddlewareResult,)), String> {
        let state = State::decode(&wire)?;
        let proceed = match state.name(handler) {
            "guard" => header(&request, "authorization") == Some("Bearer letmein"),
            "rewrite" => {
                request.uri = request.uri.replacen("/old/", "/hello/", 1);
                true
            }
            other => return Err(format!("no middleware named {other:?}")),
        };
        Ok((wire, (MiddlewareResult { proceed, request },)))
    }

    fn handle_websocket_connect(
        wire: Wire,
        (_, connection, path, _): (u64, u64, String, Option<String>),
    ) -> Result<(Wire,), String> {
        log(&format!("websocket {connection} connected on {path}"));
        Ok((wire,))
    }

    fn handle_websocket_message(
        wire: Wire,
        (_, connection, message): (u64, u64, WebsocketMessage),
    ) -> Result<(Wire, (Vec<WebsocketMessage>,)), String> {
        let state = State::decode(&wire)?;
        let replies = match message.text.as_deref() {
            Some("push") => {
                // Sent by the server on its own, beside the reply.
                http::send_websocket_message(state.server, connection, &text("pushed"))?;
                vec![text("will push")]
            }
            Some("close") => {
                http::close_websocket(state.server, connection)?;
                Vec::new()
            }
            // The framework's other calls, answered with what they return.
            Some("info") => vec![text(format!("{:?}", http::get_server_info(state.server)))],
            Some("start-again") => vec![text(format!("{:?}", http::start_server(state.server)))],
            Some("bad-route") => {
                let handler = state.handlers.first().map_or(0, |(id, _)| *id);
                let no_slash = http::add_route(state.server, "no-slash", "GET", handler);
                let no_handler = http::add_route(state.server, "/x", "GET", 9999);
                let no_server = http::add_route(9999, "/x", "GET", handler);
                vec![text(format!("{no_slash:?} {no_handler:?} {no_server:?}"))]
            }
            Some("unroute") => {
                let info = http::get_server_info(state.server)?;
                let fail = state.id_of("route-fail");
                vec![text(format!(
                    "{} routes; remove-route {:?}; again {:?}",
                    info.routes_count,
                    http::remove_route(fail),
                    http::remove_route(fail)
                ))]
            }
            Some("unguard") => {
                let guard = state.id_of("middleware-guard");
                vec![text(format!(
                    "remove-middleware {:?}; again {:?}",
                    http::remove_middleware(guard),
                    http::remove_middleware(guard)
                ))]
            }
            Some("stop") => {
                // Stops the server this connection is on: the connection closes with it.
                let stopped = http::stop_server(state.server);
                let again = http::stop_server(state.server);
                let destroyed = http::destroy_server(state.server);
                let info = http::get_server_info(state.server);
                log(&format!(
                    "stop {stopped:?}; again {again:?}; destroy {destroyed:?}; info {info:?}"
                ));
                Vec::new()
            }
            _ => vec![message],
        };
        Ok((wire, (replies,)))
    }

    fn handle_websocket_disconnect(
        wire: Wire,
        (_, connection): (u64, u64),
    ) -> Result<(Wire,), String> {
        log(&format!("websocket {connection} disconnected"));
        Ok((wire,))
    }
}

bindings::export!(Server with_types_in bindings);
