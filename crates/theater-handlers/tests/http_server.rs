//! The `http-framework` handler, served over real loopback sockets to real clients (reqwest,
//! tungstenite), with the http-server actor (actors/http-server): routes and their parameters,
//! middleware that rejects and middleware that rewrites, a guest error and a trap, websockets
//! with push and close, TLS from a certificate made here, the `listen` allow-list, back-pressure
//! and replay with no server.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use common::{Harness, harness, replay_from};
use futures_util::{SinkExt, StreamExt};
use theater::{ActorExit, ActorHandle, Manifest, ManifestOrigin};
use tokio_tungstenite::tungstenite::Message;

/// The http-server actor with this handler table and init state, written in the harness's dir.
fn server_manifest(h: &Harness, file: &str, handler: &str, init: &str) -> Manifest {
    let dir = h.dir.path();
    let state = format!("{file}.state");
    std::fs::write(dir.join(&state), init).unwrap();
    let text = format!(
        "name = \"web\"\nversion = \"0.1.0\"\ncomponent = {:?}\ninit_state = {state:?}\n[[handler]]\ntype = \"http-framework\"\n{handler}",
        test_actors::HTTP_SERVER
    );
    let path = dir.join(file);
    std::fs::write(&path, &text).unwrap();
    common::parse(&text, ManifestOrigin::File(path)).unwrap()
}

/// Spawns the server and returns it with the port it says it listens on.
async fn serve(h: &Harness, handler: &str, init: &str) -> (ActorHandle, u16) {
    let actor = h
        .runtime
        .spawn(server_manifest(h, "web.toml", handler, init))
        .await
        .unwrap();
    let port = h
        .logs
        .lock()
        .unwrap()
        .iter()
        .rev()
        .find_map(|l| {
            l.split_once("://127.0.0.1:")
                .map(|(_, p)| p.parse().unwrap())
        })
        .expect("the server logs its port");
    (actor, port)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

async fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut request = client().get(format!("http://127.0.0.1:{port}{path}"));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Whether `port` can be bound again (its server has let go of it).
async fn freed(port: u16) -> bool {
    for _ in 0..100 {
        if TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_parameters_middleware_and_failures_answer_as_they_should() {
    let h = harness();
    let (actor, port) = serve(&h, "", "0").await;
    let (status, page) = get(port, "/", &[]).await;
    assert_eq!(status, 200);
    assert!(page.contains("Hello from a Theater actor"), "{page}");
    assert_eq!(
        get(port, "/hello/ada", &[]).await,
        (200, "hello ada\n".into())
    );
    // A client cannot pose as a route's parameter.
    assert_eq!(
        get(port, "/hello/ada", &[("x-theater-param-name", "mallory")]).await,
        (200, "hello ada\n".into())
    );
    // Middleware that rewrites, and middleware that rejects.
    assert_eq!(
        get(port, "/old/bob", &[]).await,
        (200, "hello bob\n".into())
    );
    assert_eq!(get(port, "/admin", &[]).await.0, 403);
    assert_eq!(
        get(port, "/admin", &[("authorization", "Bearer letmein")]).await,
        (200, "welcome, admin\n".into())
    );
    assert_eq!(get(port, "/nowhere", &[]).await.0, 404);
    assert_eq!(get(port, "/hello/a/b", &[]).await.0, 404);
    let wrong_method = client()
        .post(format!("http://127.0.0.1:{port}/hello/ada"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status().as_u16(), 405);
    let echoed = client()
        .post(format!("http://127.0.0.1:{port}/echo"))
        .body(vec![0u8, 1, 2, 255])
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.bytes().await.unwrap().as_ref(), &[0u8, 1, 2, 255]);
    // A body over max_body_bytes (1 MiB by default) is refused, not read.
    let big = client()
        .post(format!("http://127.0.0.1:{port}/echo"))
        .body(vec![b'x'; 2 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status().as_u16(), 413);
    // A guest error is a 500 that says nothing of the guest; the actor goes on.
    let (status, body) = get(port, "/fail", &[]).await;
    assert_eq!((status, body.as_str()), (500, "internal server error\n"));
    assert_eq!(get(port, "/count", &[]).await, (200, "7 requests\n".into()));
    // A trap is a 500 too, and the actor fails: its server stops and its port is free.
    let (status, body) = get(port, "/trap", &[]).await;
    assert_eq!((status, body.as_str()), (500, "internal server error\n"));
    let exit = tokio::time::timeout(Duration::from_secs(30), actor.exited())
        .await
        .unwrap();
    assert!(
        // Guests are built with `panic = "abort"`: the panic is an `unreachable` trap.
        matches!(exit, ActorExit::Failed(ref why) if why.contains("unreachable")),
        "{exit:?}"
    );
    assert!(
        freed(port).await,
        "port {port} is free after the actor failed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_echo_push_close_and_are_recorded_for_replay() {
    let h = harness();
    let (actor, port) = serve(&h, "", "0").await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws"))
        .await
        .unwrap();
    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("hello"));
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::binary(vec![1u8, 2, 3])
    );
    // The actor pushes a message of its own beside its reply, in either order.
    ws.send(Message::text("push")).await.unwrap();
    let mut got = vec![
        ws.next().await.unwrap().unwrap(),
        ws.next().await.unwrap().unwrap(),
    ];
    got.sort_by_key(|m| m.to_string());
    assert_eq!(
        got,
        vec![Message::text("pushed"), Message::text("will push")]
    );
    // The actor closes the connection.
    ws.send(Message::text("close")).await.unwrap();
    let closing = ws.next().await.unwrap().unwrap();
    assert!(matches!(closing, Message::Close(_)), "{closing:?}");
    drop(ws);
    let (status, _) = get(port, "/hello/replay", &[]).await;
    assert_eq!(status, 200);
    // The disconnect reaches the actor.
    for _ in 0..200 {
        if h.logs
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("disconnected"))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let id = actor.id().to_owned();
    actor.stop().await;
    assert!(
        freed(port).await,
        "port {port} is free after the actor stopped"
    );
    h.runtime.flush().await.unwrap();
    // The replay serves nothing and binds nothing: every request and websocket event comes
    // from the chain, and every host call's answer too.
    let holder = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).unwrap();
    let (len, summary) = replay_from(h.dir.path(), &id, &theater_handlers::builtin()).await;
    drop(holder);
    assert_eq!(summary.events, len as u64);
    // init, connect, 4 messages, disconnect, one request.
    assert!(summary.calls >= 8, "{summary:?}");
}

/// A self-signed certificate for 127.0.0.1 and localhost, written as `certs/cert.pem` and
/// `certs/key.pem` in the harness's dir; returns them as PEM (certificate, key).
fn certificate(h: &Harness) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert, key) = (params.self_signed(&key).unwrap().pem(), key.serialize_pem());
    let certs = h.dir.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::write(certs.join("cert.pem"), &cert).unwrap();
    std::fs::write(certs.join("key.pem"), &key).unwrap();
    (cert, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_with_a_certificate_from_the_handlers_root() {
    let h = harness();
    let (cert, key) = certificate(&h);
    // A key outside the root is never read.
    std::fs::write(h.dir.path().join("outside.pem"), &key).unwrap();
    let err = h
        .runtime
        .spawn(server_manifest(
            &h,
            "escape.toml",
            "root = \"certs\"\n",
            "0 tls cert.pem ../outside.pem",
        ))
        .await
        .unwrap_err();
    assert!(err.to_string().contains(".."), "{err}");
    let (_actor, port) = serve(&h, "root = \"certs\"\n", "0 tls cert.pem key.pem").await;
    let trusting = reqwest::Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(cert.as_bytes()).unwrap())
        .build()
        .unwrap();
    let response = trusting
        .get(format!("https://localhost:{port}/hello/tls"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.text().await.unwrap(), "hello tls\n");
    // Plain HTTP on the TLS port gets no answer.
    let plain = client()
        .get(format!("http://127.0.0.1:{port}/hello/x"))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(plain.is_err(), "{plain:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_binds_only_what_listen_allows() {
    let h = harness();
    // Port 0 (any) is not one fixed port.
    let err = h
        .runtime
        .spawn(server_manifest(
            &h,
            "fixed.toml",
            "listen = [\"127.0.0.1:1\"]\n",
            "0",
        ))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(
            "127.0.0.1 on any port is not in the http-framework handler's `listen` (127.0.0.1:1)"
        ),
        "{err}"
    );
    // Another port than the one allowed.
    let err = h
        .runtime
        .spawn(server_manifest(
            &h,
            "other.toml",
            "listen = [\"127.0.0.1:1\"]\n",
            "2",
        ))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("127.0.0.1:2 is not in"), "{err}");
    // Another address than the one allowed (the actor listens on 127.0.0.1).
    let err = h
        .runtime
        .spawn(server_manifest(
            &h,
            "v6.toml",
            "listen = [\"[::1]:*\"]\n",
            "0",
        ))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not in"), "{err}");
    let bad = common::parse(
        "name = \"x\"\nversion = \"0.1.0\"\ncomponent = \"x.wasm\"\n[[handler]]\ntype = \"http-framework\"\nlisten = [\"example.com:80\"]\n",
        ManifestOrigin::Inline {
            base_dir: ".".into(),
        },
    )
    .unwrap_err();
    assert!(bad.to_string().contains("not ADDRESS:PORT"), "{bad}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_actor_answers_503_past_its_queue_every_request_is_answered_and_memory_stays_flat() {
    let h = harness();
    let (_actor, port) = serve(&h, "max_pending = 4\n", "0").await;
    // Work that takes a while here (at least 50 ms a request), so that the flood overlaps.
    let mut n = 1_000_000u64;
    let one = loop {
        let started = std::time::Instant::now();
        assert_eq!(get(port, &format!("/work/{n}"), &[]).await.0, 200);
        let one = started.elapsed();
        if one >= Duration::from_millis(50) || n >= 1 << 36 {
            break one;
        }
        n *= 4;
    };
    let path = format!("/work/{n}");
    let clients = 200;
    let before = common::peak_rss_kb() / 1024;
    let flood = client();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let request = flood.get(format!("http://127.0.0.1:{port}{path}"));
        tasks.push(tokio::spawn(async move {
            request.send().await.unwrap().status().as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    let grown = (common::peak_rss_kb() / 1024).saturating_sub(before);
    println!("{clients} clients: peak RSS grew {grown} MiB");
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let busy = statuses.iter().filter(|s| **s == 503).count();
    assert_eq!(ok + busy, clients, "every request answered: {statuses:?}");
    assert!(ok >= 1, "{statuses:?}");
    assert!(
        busy >= 1,
        "{clients} clients at a queue of 4 (one request takes {one:?}): {statuses:?}"
    );
    // Nothing queues without bound: the flood costs the process (clients included) little.
    assert!(grown < 128, "peak RSS grew {grown} MiB under the flood");
    // And the actor serves on afterwards.
    assert_eq!(get(port, "/hello/after", &[]).await.0, 200);
}

/// A server comes back after a crash on the port it had (`theater run --resume`; the CLI tests
/// do it with SIGKILL). Here the crashed runtime is abandoned in this process, so its server
/// still holds the port: the recovered actor cannot serve again and fails, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovered_server_that_cannot_listen_again_fails_its_actor_saying_why() {
    let h = harness();
    let (actor, port) = serve(&h, "", "0").await;
    assert_eq!(get(port, "/hello/x", &[]).await.0, 200);
    std::mem::forget(actor);
    let Harness { runtime, dir, .. } = h;
    runtime.abandon().await.unwrap();
    let mut config = theater::RuntimeConfig {
        data_dir: Some(dir.path().to_owned()),
        on_log: std::sync::Arc::new(|_| {}),
        handlers: theater_handlers::builtin(),
        ..Default::default()
    };
    config.engine.max_instances = 16;
    let second = theater::Runtime::new(config).unwrap();
    let recovered = second.recover().await.unwrap();
    let why = &recovered
        .failed
        .first()
        .expect("the server's actor failed")
        .2;
    assert!(
        why.contains(&format!(
            "handler \"http-framework\" could not recover: server 1 cannot serve 127.0.0.1:{port} again"
        )),
        "{why}"
    );
}

/// Sends `command` on the websocket and returns the text of the answer.
async fn say<S>(ws: &mut S, command: &str) -> String
where
    S: futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error>
        + futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
        + Unpin,
{
    ws.send(Message::text(command)).await.unwrap();
    match ws.next().await {
        Some(Ok(Message::Text(text))) => text.to_string(),
        other => panic!("{command}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_framework_call_answers_and_refuses_as_documented() {
    let h = harness();
    let (_actor, port) = serve(&h, "", "0").await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws"))
        .await
        .unwrap();
    let info = say(&mut ws, "info").await;
    assert!(
        info.contains(&format!("port: {port}"))
            && info.contains("running: true")
            && info.contains("routes-count: 8")
            && info.contains("middleware-count: 2")
            && info.contains("websocket-enabled: true"),
        "{info}"
    );
    assert_eq!(
        say(&mut ws, "start-again").await,
        format!("Err(\"server 1 is running already, on port {port}\")")
    );
    let bad = say(&mut ws, "bad-route").await;
    assert!(
        bad.contains("path \\\"no-slash\\\" must start with `/`")
            && bad.contains("no handler 9999; register it with register-handler")
            && bad.contains("no server 9999"),
        "{bad}"
    );
    assert_eq!(get(port, "/fail", &[]).await.0, 500);
    let unroute = say(&mut ws, "unroute").await;
    assert!(
        unroute.starts_with("8 routes; remove-route Ok(()); again Err(\"no route "),
        "{unroute}"
    );
    assert_eq!(get(port, "/fail", &[]).await.0, 404);
    let unguard = say(&mut ws, "unguard").await;
    assert!(
        unguard.starts_with("remove-middleware Ok(()); again Err(\"no middleware "),
        "{unguard}"
    );
    assert_eq!(
        get(port, "/admin", &[]).await,
        (200, "welcome, admin\n".into())
    );
    // Stopping the server from one of its own connections closes that connection and the port.
    ws.send(Message::text("stop")).await.unwrap();
    let closed = ws.next().await;
    assert!(
        matches!(closed, None | Some(Ok(Message::Close(_))) | Some(Err(_))),
        "{closed:?}"
    );
    assert!(freed(port).await, "port {port} is free after stop-server");
    let logs = h.logs.lock().unwrap().join("\n");
    assert!(
        logs.contains(
            "stop Ok(()); again Err(\"server 1 is not running\"); destroy Ok(()); info Err(\"no server 1\")"
        ),
        "{logs}"
    );
}

/// The HTTP client speaks TLS (rustls): to a server whose certificate no trusted root signed
/// (the self-signed one above), a request is an `err` about the certificate, not an answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_client_refuses_a_certificate_it_cannot_trust() {
    let h = harness();
    certificate(&h);
    let (_server, port) = serve(&h, "root = \"certs\"\n", "0 tls cert.pem key.pem").await;
    let client = common::keeper(
        &h,
        test_actors::HTTP_KEEPER,
        &format!(
            "[[handler]]\ntype = \"http-client\"\nallow = [\"localhost:{port}\"]\nallow_private = true\n"
        ),
    )
    .await;
    let answer = common::ask(&client, &format!("get https://localhost:{port}/hello/x"))
        .await
        .unwrap();
    assert!(
        answer.starts_with("err") && answer.to_lowercase().contains("certificate"),
        "{answer}"
    );
}
