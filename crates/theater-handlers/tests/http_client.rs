//! The `http-client` handler, through a real guest (actors/http-keeper) against a real HTTP
//! server on loopback: requests and their errors, the allow-list (directly, through redirects,
//! by IP literal), private addresses, the name-resolution seam, limits, attenuation, and a
//! replay with the server gone.

mod common;

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use common::{Harness, ask, harness, harness_with, keeper, puppet};
use theater::{Manifest, ManifestOrigin};
use theater_handlers::{HttpClientHandler, NameResolver};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KEEPER: &str = test_actors::HTTP_KEEPER;

/// A small HTTP/1.1 server on a loopback port; see `respond` for its paths.
async fn server() -> u16 {
    serving().await.0
}

/// [`server`], with the task that owns its listener (aborting it closes the port).
async fn serving() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break at + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                let header = |name: &str| {
                    head.lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
                        })
                        .unwrap_or_default()
                };
                let length: usize = header("content-length").parse().unwrap_or(0);
                while buf.len() < head_end + length {
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let body = String::from_utf8_lossy(&buf[head_end..]).into_owned();
                let mut line = head.lines().next().unwrap_or("").split(' ');
                let (method, path) = (line.next().unwrap_or(""), line.next().unwrap_or(""));
                let (status, extra, reply) =
                    respond(method, path, &body, &header("x-test"), port).await;
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n{extra}\r\n",
                    reply.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.write_all(reply.as_bytes()).await;
            });
        }
    });
    (port, task)
}

async fn respond(
    method: &str,
    path: &str,
    body: &str,
    x_test: &str,
    port: u16,
) -> (&'static str, String, String) {
    match path {
        "/hello" => ("200 OK", String::new(), "hi".into()),
        "/echo" => (
            "201 Created",
            String::new(),
            format!("{method} {body} x-test={x_test}"),
        ),
        "/to-ip" => (
            "302 Found",
            format!("location: http://127.0.0.1:{port}/hello\r\n"),
            String::new(),
        ),
        "/to-local" => (
            "302 Found",
            format!("location: http://localhost:{port}/hello\r\n"),
            String::new(),
        ),
        "/big" => ("200 OK", String::new(), "x".repeat(2000)),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            ("200 OK", String::new(), "late".into())
        }
        _ => ("404 Not Found", String::new(), "no".into()),
    }
}

/// The keeper, allowed to reach the test server on `localhost:port`, with these extra keys.
async fn local_keeper(h: &Harness, port: u16, extra: &str) -> theater::ActorHandle {
    keeper(
        h,
        KEEPER,
        &client(&format!(
            "allow = [\"localhost:{port}\"]\nallow_private = true\n{extra}"
        )),
    )
    .await
}

fn client(extra: &str) -> String {
    format!("[[handler]]\ntype = \"http-client\"\n{extra}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_reach_allowed_hosts_and_answers_come_back() {
    let port = server().await;
    let h = harness();
    let k = local_keeper(&h, port, "").await;
    let base = format!("http://localhost:{port}");
    assert_eq!(
        ask(&k, &format!("get {base}/hello")).await.unwrap(),
        "ok 200 hi"
    );
    assert_eq!(
        ask(&k, &format!("send POST {base}/echo a body"))
            .await
            .unwrap(),
        "ok 201 POST a body x-test="
    );
    assert_eq!(
        ask(&k, &format!("header x-test yes {base}/echo"))
            .await
            .unwrap(),
        "ok 201 GET  x-test=yes"
    );
    assert_eq!(
        ask(&k, &format!("get {base}/nope")).await.unwrap(),
        "ok 404 no"
    );
    // Followed to an allowed host.
    assert_eq!(
        ask(&k, &format!("get {base}/to-local")).await.unwrap(),
        "ok 200 hi"
    );
    for (command, want) in [
        (
            format!("header host evil.example {base}/hello"),
            "`host` header",
        ),
        (
            format!("send BAD\tMETHOD {base}/hello -"),
            "not an HTTP method",
        ),
        ("get file:///etc/passwd".to_owned(), "not http or https"),
        ("get not a url".to_owned(), "is not a URL"),
        (
            "get http://localhost:1/hello".to_owned(),
            "is not in the http-client handler's `allow`",
        ),
    ] {
        let answer = ask(&k, &command).await.unwrap();
        assert!(
            answer.starts_with("err") && answer.contains(want),
            "{command}: {answer}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_off_the_list_are_refused_directly_by_redirect_and_by_ip_literal() {
    let port = server().await;
    let h = harness();
    let k = local_keeper(&h, port, "").await;
    for (command, want) in [
        // The IP literal of an allowed name is another host.
        (
            format!("get http://127.0.0.1:{port}/hello"),
            "host 127.0.0.1",
        ),
        (format!("get http://[::1]:{port}/hello"), "host ::1"),
        ("get http://example.com/".to_owned(), "host example.com:80"),
        // A redirect to a host off the list is not followed.
        (
            format!("get http://localhost:{port}/to-ip"),
            "a redirect refused",
        ),
    ] {
        let answer = ask(&k, &command).await.unwrap();
        assert!(
            answer.starts_with("err") && answer.contains(want) && answer.contains("allow"),
            "{command}: {answer}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_addresses_need_allow_private() {
    let port = server().await;
    let h = harness();
    // An allowed name that resolves to loopback.
    let k = keeper(
        &h,
        KEEPER,
        &client(&format!("allow = [\"localhost:{port}\"]\n")),
    )
    .await;
    let answer = ask(&k, &format!("get http://localhost:{port}/hello"))
        .await
        .unwrap();
    assert!(
        answer.contains("resolves only to addresses that are not public"),
        "{answer}"
    );
    // An allowed IP literal that is loopback.
    let k = keeper(
        &h,
        KEEPER,
        &client(&format!("allow = [\"127.0.0.1:{port}\"]\n")),
    )
    .await;
    let answer = ask(&k, &format!("get http://127.0.0.1:{port}/hello"))
        .await
        .unwrap();
    assert!(
        answer.contains("127.0.0.1 is not a public address"),
        "{answer}"
    );
}

/// Names resolved from a table, not DNS.
struct Table(HashMap<String, Vec<IpAddr>>);

impl NameResolver for Table {
    fn resolve<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn std::future::Future<Output = std::io::Result<Vec<IpAddr>>> + Send + 'a>> {
        Box::pin(async move {
            self.0.get(host).cloned().ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, format!("no {host}"))
            })
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_resolve_through_the_seam() {
    let port = server().await;
    let table = Table(HashMap::from([(
        "api.test".to_owned(),
        vec!["127.0.0.1".parse().unwrap()],
    )]));
    let registry = theater_handlers::builtin()
        .replacing(HttpClientHandler::with_resolver(Arc::new(table)))
        .unwrap();
    let h = harness_with(|c| c.handlers = registry.clone());
    let spawn = |extra: String| {
        let text = format!(
            "name = \"k\"\nversion = \"0.1.0\"\ncomponent = {KEEPER:?}\n[[handler]]\ntype = \"message-server\"\n{extra}"
        );
        let manifest = Manifest::parse_with(
            &text,
            ManifestOrigin::Inline {
                base_dir: ".".into(),
            },
            &registry,
        )
        .unwrap();
        h.runtime.spawn(manifest)
    };
    let k = spawn(client("allow = [\"api.test\"]\nallow_private = true\n"))
        .await
        .unwrap();
    assert_eq!(
        ask(&k, &format!("get http://api.test:{port}/hello"))
            .await
            .unwrap(),
        "ok 200 hi"
    );
    let k = spawn(client("allow = [\"api.test\"]\n")).await.unwrap();
    let answer = ask(&k, &format!("get http://api.test:{port}/hello"))
        .await
        .unwrap();
    assert!(
        answer.contains("api.test resolves only to addresses that are not public")
            && !answer.contains("127.0.0.1"),
        "{answer}"
    );
    let k = spawn(client("allow = [\"nowhere.test\"]\nallow_private = true\n"))
        .await
        .unwrap();
    let answer = ask(&k, "get http://nowhere.test/").await.unwrap();
    assert!(
        answer.starts_with("err") && answer.contains("no nowhere.test"),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_and_waits_are_bounded() {
    let port = server().await;
    let h = harness();
    let k = local_keeper(&h, port, "max_response_bytes = 1000\ntimeout_ms = 300\n").await;
    let answer = ask(&k, &format!("get http://localhost:{port}/big"))
        .await
        .unwrap();
    assert!(answer.contains("is more than 1000 bytes"), "{answer}");
    let answer = ask(&k, &format!("get http://localhost:{port}/slow"))
        .await
        .unwrap();
    assert!(answer.contains("timed out"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_reaches_no_host_its_parent_cannot() {
    let h = harness();
    let parent = puppet(
        &h,
        "parent.toml",
        &client("allow = [\"api.example.com\", \"files.example.com:443\"]\n"),
    )
    .await;
    let spawn = |extra: &str| {
        common::keeper_manifest(h.dir.path(), KEEPER, extra);
        format!("spawn {}", h.dir.path().join("keeper.toml").display())
    };
    for (extra, key) in [
        (client("allow = [\"evil.example.com\"]\n"), "`allow`"),
        (client("allow = [\"files.example.com\"]\n"), "`allow`"),
        (client("allow = [\"files.example.com:80\"]\n"), "`allow`"),
        (client("allow_private = true\n"), "`allow_private`"),
        (client("timeout_ms = 999999\n"), "`timeout_ms`"),
    ] {
        let e = ask(&parent, &spawn(&extra)).await.unwrap();
        assert!(e.starts_with("err") && e.contains(key), "{extra}: {e}");
    }
    let child = ask(
        &parent,
        &spawn(&client(
            "allow = [\"api.example.com:8443\", \"files.example.com:443\"]\n",
        )),
    )
    .await
    .unwrap();
    assert!(child.starts_with("ok"), "{child}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_replay_with_the_network_down() {
    let (port, server) = serving().await;
    let h = harness();
    let k = local_keeper(&h, port, "").await;
    assert_eq!(
        ask(&k, &format!("get http://localhost:{port}/hello"))
            .await
            .unwrap(),
        "ok 200 hi"
    );
    assert!(
        ask(&k, "get http://localhost:1/hello")
            .await
            .unwrap()
            .starts_with("err")
    );
    let id = k.id().to_owned();
    drop(k);
    let Harness { runtime, dir, .. } = h;
    runtime.shutdown().await.unwrap();
    server.abort();
    let _ = server.await;
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the server still listens"
    );
    let (len, summary) = common::replay_from(dir.path(), &id, &theater_handlers::builtin()).await;
    assert_eq!(summary.events, len as u64);
    assert_eq!(summary.host_calls, 2, "{summary:?}");
}
