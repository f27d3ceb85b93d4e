//! HTTP: what serving through an actor costs, against a plain axum server doing the same on
//! the same machine in the same run.
//!
//! - `http-hello`: `GET /hello/NAME` answered `hello NAME`, driven by `wrk` (one thread, 32
//!   connections) for a few seconds: requests per second, and p99 latency (`http-hello-p99`).
//! - `ws-echo`: 16 websocket connections, each sending a short text message and waiting for
//!   its echo, over and over: messages per second, and p99 round trip (`ws-echo-p99`).
//!
//! Modes: `recorded` (the http-server actor, its chain persisted, batched), `unrecorded` (no
//! chain), `axum` (a plain axum handler: the peer a user would pick instead).
//!
//! Fair shares of the two cores: every mode serves on one tokio worker thread, and `wrk` runs
//! one thread, so the server and the load generator each have a core (a recorded run's chain
//! writer is work the server side adds). The websocket clients run on a thread of their own.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use theater::{Runtime, RuntimeConfig};
use tokio_tungstenite::tungstenite::Message;

use crate::{Components, Sizes};

const WS_CONNECTIONS: usize = 16;

pub(crate) fn run(mode: &str, sizes: &Sizes, components: &Components) {
    let seconds = ((5.0 * sizes.scale).round() as u64).max(1);
    let ws_messages = ((2_000.0 * sizes.scale) as usize).max(50);
    let data_dir = tempfile::tempdir().expect("a temporary data dir");
    let mode = mode.to_owned();
    let component = components.http_server.clone();
    let data = data_dir.path().to_owned();
    crate::on_worker(Some(1), async move {
        let (port, runtime) = match mode.as_str() {
            "axum" => (plain_axum().await, None),
            _ => {
                let (port, runtime) = actor(&mode, &component, &data).await;
                (port, Some(runtime))
            }
        };
        let wrk = tokio::task::spawn_blocking(move || wrk(port, seconds))
            .await
            .expect("the wrk thread");
        match wrk {
            Ok((rate, p99)) => {
                println!(
                    "{{\"bench\":\"http-hello\",\"mode\":\"{mode}\",\"seconds\":{seconds},\"requests_per_second\":{rate:.0}}}"
                );
                println!(
                    "{{\"bench\":\"http-hello-p99\",\"mode\":\"{mode}\",\"p99_us\":{p99:.0}}}"
                );
            }
            Err(why) => println!(
                "{{\"bench\":\"http-hello\",\"mode\":\"{mode}\",\"failed\":{}}}",
                serde_json::Value::String(why)
            ),
        }
        // Off the server's one worker thread, which must go on serving meanwhile.
        let ws = tokio::task::spawn_blocking(move || ws_load(port, ws_messages))
            .await
            .expect("the websocket clients' thread");
        let (rate, p99) = ws;
        println!(
            "{{\"bench\":\"ws-echo\",\"mode\":\"{mode}\",\"messages\":{},\"messages_per_second\":{rate:.0}}}",
            ws_messages * WS_CONNECTIONS
        );
        println!("{{\"bench\":\"ws-echo-p99\",\"mode\":\"{mode}\",\"p99_us\":{p99:.0}}}");
        if let Some(runtime) = runtime {
            runtime.shutdown().await.unwrap();
        }
    });
}

/// The http-server actor on a free port; returns the port.
async fn actor(
    mode: &str,
    component: &std::path::Path,
    data_dir: &std::path::Path,
) -> (u16, Runtime) {
    let (tx, rx) = std::sync::mpsc::channel();
    let config = RuntimeConfig {
        handlers: theater_handlers::builtin(),
        on_log: Arc::new(move |line| {
            if let Some((_, port)) = line.message.split_once("://127.0.0.1:") {
                let _ = tx.send(port.trim().parse::<u16>().ok());
            }
        }),
        ..crate::config(mode, data_dir)
    };
    let state = data_dir.join("port.txt");
    std::fs::write(&state, "0").expect("writing the port");
    let manifest = crate::manifest(
        "web",
        component,
        &format!(
            "init_state = {:?}\n[[handler]]\ntype = \"http-framework\"\nmax_pending = 1024\n",
            state.display().to_string()
        ),
    );
    let runtime = Runtime::new(config).unwrap();
    let actor = runtime.spawn(manifest).await.unwrap();
    std::mem::forget(actor);
    let port = rx
        .recv_timeout(Duration::from_secs(30))
        .ok()
        .flatten()
        .expect("the server says its port");
    (port, runtime)
}

/// A plain axum server with the same route and a websocket echo; returns its port.
async fn plain_axum() -> u16 {
    use axum::extract::Path;
    use axum::extract::ws::{Message as Frame, WebSocketUpgrade};
    use axum::routing::get;
    let app = axum::Router::new()
        .route(
            "/hello/{name}",
            get(|Path(name): Path<String>| async move { format!("hello {name}\n") }),
        )
        .route(
            "/ws",
            get(|upgrade: WebSocketUpgrade| async move {
                upgrade.on_upgrade(|mut socket| async move {
                    while let Some(Ok(frame)) = socket.recv().await {
                        if matches!(frame, Frame::Text(_) | Frame::Binary(_))
                            && socket.send(frame).await.is_err()
                        {
                            break;
                        }
                    }
                })
            }),
        );
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("binding a port");
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

/// Runs wrk against `/hello/bench`: (requests per second, p99 in µs).
fn wrk(port: u16, seconds: u64) -> Result<(f64, f64), String> {
    let output = std::process::Command::new("wrk")
        .args(["-t1", "-c32", &format!("-d{seconds}s"), "--latency"])
        .arg(format!("http://127.0.0.1:{port}/hello/bench"))
        .output()
        .map_err(|e| format!("running wrk ({e}); install it with `apt-get install wrk`"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if text.contains("Non-2xx") {
        return Err(format!("some answers were not 200:\n{text}"));
    }
    let rate = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("no Requests/sec in wrk's output:\n{text}"))?;
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .and_then(|v| micros(v.trim()))
        .ok_or_else(|| format!("no 99% latency in wrk's output:\n{text}"))?;
    Ok((rate, p99))
}

/// wrk's `1.23ms`, `456.00us` or `1.01s`, in µs.
fn micros(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let n: f64 = number.parse().ok()?;
    Some(match unit {
        "us" => n,
        "ms" => n * 1e3,
        "s" => n * 1e6,
        _ => return None,
    })
}

/// `WS_CONNECTIONS` clients, each sending `messages` and awaiting every echo: (messages per
/// second, p99 round trip in µs).
fn ws_load(port: u16, messages: usize) -> (f64, f64) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the clients' runtime");
    runtime.block_on(async move {
        let url = format!("ws://127.0.0.1:{port}/ws");
        let mut sockets = Vec::new();
        for _ in 0..WS_CONNECTIONS {
            let (socket, _) = tokio_tungstenite::connect_async(&url)
                .await
                .expect("connecting a websocket");
            sockets.push(socket);
        }
        let started = Instant::now();
        let clients = sockets.into_iter().map(|mut socket| async move {
            let mut times = Vec::with_capacity(messages);
            for i in 0..messages {
                let sent = Instant::now();
                let text = format!("m{i}");
                socket
                    .send(Message::text(text.clone()))
                    .await
                    .expect("sending");
                loop {
                    match socket.next().await {
                        Some(Ok(Message::Text(echo))) if *echo == *text => break,
                        Some(Ok(_)) => continue,
                        other => panic!("the echo did not come back: {other:?}"),
                    }
                }
                times.push(sent.elapsed().as_secs_f64() * 1e6);
            }
            let _ = socket.close(None).await;
            times
        });
        let mut all: Vec<f64> = futures_util::future::join_all(clients)
            .await
            .into_iter()
            .flatten()
            .collect();
        let elapsed = started.elapsed().as_secs_f64();
        all.sort_by(f64::total_cmp);
        let p99 = all[(all.len() * 99 / 100).min(all.len() - 1)];
        (all.len() as f64 / elapsed, p99)
    })
}
