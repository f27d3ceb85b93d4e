//! `theater new`: scaffold an actor crate with the WIT package in `wit/deps`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use crate::output;

#[derive(clap::Args)]
pub struct Args {
    /// The project's name; also its directory unless --dir is given
    name: String,
    /// The kind of actor to start from
    #[arg(long, default_value = "basic", value_parser = ["basic", "message-server", "supervisor", "http-server"])]
    template: String,
    /// Where to create the project [default: ./NAME]
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// wit-bindgen's guest crate; the version the guest toolchain was verified with.
const WIT_BINDGEN: &str = "0.46";

pub fn run(args: Args) -> Result<ExitCode> {
    let name = &args.name;
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
        && !name.contains("--");
    if !valid {
        bail!(
            "invalid project name {name:?}: use lowercase letters, digits and single dashes, starting with a letter (e.g. my-actor)"
        );
    }
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from(name));
    if dir.exists()
        && dir
            .read_dir()
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!("{} already exists and is not empty", dir.display());
    }
    write_project(&dir, name, &args.template)
        .with_context(|| format!("creating {}", dir.display()))?;
    output::status(&format!(
        "created actor {name} in {} (template {})",
        dir.display(),
        args.template
    ));
    let then = if args.template == "http-server" {
        "\n  curl http://127.0.0.1:8080/hello/you   # from another terminal; port.txt sets the port"
    } else {
        ""
    };
    eprintln!(
        "\nNext:\n  cd {}\n  theater build\n  theater run{then}",
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn write_project(dir: &Path, name: &str, template: &str) -> Result<()> {
    let crate_name = name.replace('-', "_");
    let mut files: Vec<(PathBuf, String)> = vec![
        (
            "Cargo.toml".into(),
            format!(
                r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"

[lib]
crate-type = ["cdylib"]

[dependencies]
wit-bindgen = {{ version = "{WIT_BINDGEN}", default-features = false, features = ["macros", "realloc"] }}

[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
panic = "abort"
strip = "debuginfo"

# A project of its own, even when created inside another cargo workspace.
[workspace]
"#
            ),
        ),
        ("src/lib.rs".into(), lib_rs(name, template)),
        ("wit/world.wit".into(), world_wit(name, template)),
        (
            "manifest.toml".into(),
            manifest(name, name, &crate_name, template, None),
        ),
        (".gitignore".into(), "/target\n".into()),
    ];
    if template == "http-server" {
        files.push(("port.txt".into(), "8080\n".into()));
    }
    if template == "supervisor" {
        let worker = manifest(
            &format!("{name}-worker"),
            name,
            &crate_name,
            "worker",
            Some("worker-state.txt"),
        );
        files.push(("worker.toml".into(), worker));
        files.push(("worker-state.txt".into(), "worker".into()));
    }
    for (path, contents) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap())?;
        std::fs::write(&path, contents)?;
    }
    let deps = dir.join("wit/deps/theater-simple");
    std::fs::create_dir_all(&deps)?;
    for (file, contents) in theater::wit::FILES {
        std::fs::write(deps.join(file), contents)?;
    }
    Ok(())
}

fn world_wit(name: &str, template: &str) -> String {
    let body = match template {
        "basic" => "    import theater:simple/runtime;\n    export theater:simple/actor;\n",
        "message-server" => {
            "    import theater:simple/runtime;\n    import theater:simple/message-server-host;\n    export theater:simple/actor;\n    export theater:simple/message-server-client;\n"
        }
        "http-server" => {
            "    import theater:simple/runtime;\n    import theater:simple/http-framework;\n    export theater:simple/actor;\n    export theater:simple/http-handlers;\n"
        }
        _ => {
            "    import theater:simple/runtime;\n    import theater:simple/message-server-host;\n    import theater:simple/supervisor;\n    export theater:simple/actor;\n    export theater:simple/message-server-client;\n    export theater:simple/supervisor-handlers;\n"
        }
    };
    format!("package {name}:actor;\n\nworld {name} {{\n{body}}}\n")
}

fn manifest(
    name: &str,
    project: &str,
    crate_name: &str,
    template: &str,
    init_state: Option<&str>,
) -> String {
    let mut text = format!(
        r#"name = "{name}"
version = "0.1.0"
description = "A Theater actor"
# Written by `theater build`.
component = "target/wasm32-unknown-unknown/release/{crate_name}.component.wasm"
"#
    );
    if let Some(state) = init_state {
        text.push_str(&format!("init_state = \"{state}\"\n"));
    }
    match template {
        "basic" => text.push_str(
            "\n# Grant capabilities with one [[handler]] table each, e.g.:\n# [[handler]]\n# type = \"message-server\"\n",
        ),
        "message-server" => text.push_str(
            r#"
[[handler]]
type = "message-server"

# Optional; these are the defaults (docs/manifest.md in the Theater repository).
# [messaging]
# request_timeout_ms = 30000
# mailbox_capacity = 10000
# max_message_bytes = 1048576
"#,
        ),
        "http-server" => text.push_str(
            r#"# The port to listen on (0: any free port); the actor reads it as its initial state.
init_state = "port.txt"

[[handler]]
type = "http-framework"
# Optional; these are the defaults (docs/manifest.md in the Theater repository).
# listen = ["127.0.0.1:*", "[::1]:*"]   # where servers may listen
# max_pending = 64                      # requests waiting for the actor; more get 503
# request_timeout_ms = 30000
# max_body_bytes = 1048576
# root = "certs"                        # where a tls-config's certificate and key are read
"#,
        ),
        "worker" => text.push_str(
            r#"
[[handler]]
type = "message-server"

# The worker is the supervisor's component, so it imports what the supervisor does.
[[handler]]
type = "supervisor"

# Restarted whenever it stops ("transient": only when it fails; "temporary": never).
[child]
restart = "permanent"
"#,
        ),
        _ => text.push_str(&format!(
            r#"
[[handler]]
type = "message-server"

[[handler]]
type = "supervisor"

# How the runtime restarts this actor's children ({project}'s worker.toml is one).
[supervision]
strategy = "one-for-one"   # or "one-for-all", "rest-for-one"
max_restarts = 3           # at most this many restarts...
period_ms = 5000           # ...in this many ms, or this supervisor fails too
restart = "permanent"      # children's default: "permanent", "transient", "temporary"
restart_from = "init"      # or "last-state"
shutdown_timeout_ms = 5000
"#
        )),
    }
    text
}

fn lib_rs(name: &str, template: &str) -> String {
    let header = format!(
        r#"//! The {name} actor.

mod bindings {{
    wit_bindgen::generate!({{
        world: "{name}",
        path: "wit",
        // Bindings for theater:simple (in wit/deps) are generated here too.
        generate_all,
    }});
}}
"#
    );
    if template == "http-server" {
        return format!("{header}{}", http_server_body());
    }
    let body = match template {
        "basic" => format!(
            r#"
use bindings::exports::theater::simple::actor::Guest;
use bindings::theater::simple::runtime::log;

struct Component;

impl Guest for Component {{
    fn init(state: Option<Vec<u8>>, params: (String,)) -> Result<(Option<Vec<u8>>,), String> {{
        let (id,) = params;
        log(&format!("{name} ({{id}}) initialized"));
        Ok((state,))
    }}
}}
"#
        ),
        "message-server" => format!(
            r#"
use bindings::exports::theater::simple::actor::Guest as Actor;
use bindings::exports::theater::simple::message_server_client::Guest as Client;
use bindings::theater::simple::message_server_host::send_on_channel;
use bindings::theater::simple::runtime::log;
use bindings::theater::simple::types::ChannelAccept;

/// The state: how many messages this actor has handled, as text.
type State = Option<Vec<u8>>;

fn count(state: &State) -> u64 {{
    state.as_deref().and_then(|s| std::str::from_utf8(s).ok()?.parse().ok()).unwrap_or(0)
}}

fn counted(state: &State) -> State {{
    Some((count(state) + 1).to_string().into_bytes())
}}

struct Component;

impl Actor for Component {{
    fn init(state: State, (id,): (String,)) -> Result<(State,), String> {{
        log(&format!("{name} ({{id}}) ready for messages"));
        Ok((Some(count(&state).to_string().into_bytes()),))
    }}
}}

impl Client for Component {{
    /// A one-way message.
    fn handle_send(state: State, (msg,): (Vec<u8>,)) -> Result<(State,), String> {{
        log(&format!("got {{:?}}", String::from_utf8_lossy(&msg)));
        Ok((counted(&state),))
    }}

    /// A request: the answer is the message back with the count. Return `None` to answer
    /// later with `respond-to-request`.
    fn handle_request(state: State, (_id, msg): (String, Vec<u8>)) -> Result<(State, (Option<Vec<u8>>,)), String> {{
        let state = counted(&state);
        let answer = format!("{{}} (message {{}})", String::from_utf8_lossy(&msg), count(&state));
        Ok((state, (Some(answer.into_bytes()),)))
    }}

    /// Accepts every channel and greets it.
    fn handle_channel_open(state: State, _: (String, Vec<u8>)) -> Result<(State, (ChannelAccept,)), String> {{
        Ok((state, (ChannelAccept {{ accepted: true, message: Some(b"hello".to_vec()) }},)))
    }}

    /// Echoes every channel message back.
    fn handle_channel_message(state: State, (channel, msg): (String, Vec<u8>)) -> Result<(State,), String> {{
        send_on_channel(&channel, &msg)?;
        Ok((counted(&state),))
    }}

    fn handle_channel_close(state: State, _: (String,)) -> Result<(State,), String> {{
        Ok((state,))
    }}
}}
"#
        ),
        _ => format!(
            r#"
use bindings::exports::theater::simple::actor::Guest as Actor;
use bindings::exports::theater::simple::message_server_client::Guest as Client;
use bindings::exports::theater::simple::supervisor_handlers::Guest as Handlers;
use bindings::theater::simple::message_server_host::request;
use bindings::theater::simple::runtime::{{log, shutdown}};
use bindings::theater::simple::supervisor::spawn;
use bindings::theater::simple::types::{{ChannelAccept, WitActorError}};

type State = Option<Vec<u8>>;

struct Component;

impl Actor for Component {{
    fn init(state: State, (id,): (String,)) -> Result<(State,), String> {{
        // The same component is the worker: worker.toml gives it the state "worker".
        if state.as_deref() == Some(b"worker") {{
            log(&format!("worker ({{id}}) ready"));
            return Ok((state,));
        }}
        // The manifest path is relative to this actor's manifest.
        let worker = spawn("worker.toml", None)?;
        let answer = request(&worker, b"hello")?;
        log(&format!("worker answered {{:?}}", String::from_utf8_lossy(&answer)));
        // `theater run` keeps going while children live; this demo ends here. Remove this
        // line to keep supervising (then stop it with Ctrl-C).
        shutdown(None)?;
        Ok((Some(worker.into_bytes()),))
    }}
}}

impl Client for Component {{
    fn handle_send(state: State, _: (Vec<u8>,)) -> Result<(State,), String> {{
        Ok((state,))
    }}

    fn handle_request(state: State, (_, msg): (String, Vec<u8>)) -> Result<(State, (Option<Vec<u8>>,)), String> {{
        let answer = format!("{name} worker got {{}}", String::from_utf8_lossy(&msg));
        Ok((state, (Some(answer.into_bytes()),)))
    }}

    fn handle_channel_open(state: State, _: (String, Vec<u8>)) -> Result<(State, (ChannelAccept,)), String> {{
        Ok((state, (ChannelAccept {{ accepted: false, message: None }},)))
    }}

    fn handle_channel_message(state: State, _: (String, Vec<u8>)) -> Result<(State,), String> {{
        Ok((state,))
    }}

    fn handle_channel_close(state: State, _: (String,)) -> Result<(State,), String> {{
        Ok((state,))
    }}
}}

/// Called after the runtime has applied [supervision]: a failed child is already restarted
/// (or not, by its restart type).
impl Handlers for Component {{
    fn handle_child_error(state: State, (child, error): (String, WitActorError)) -> Result<(State,), String> {{
        let why = String::from_utf8_lossy(&error.data.unwrap_or_default()).into_owned();
        log(&format!("child {{child}} failed: {{why}}"));
        Ok((state,))
    }}

    fn handle_child_exit(state: State, (child, _): (String, Option<Vec<u8>>)) -> Result<(State,), String> {{
        log(&format!("child {{child}} shut down"));
        Ok((state,))
    }}

    fn handle_child_external_stop(state: State, (child,): (String,)) -> Result<(State,), String> {{
        log(&format!("child {{child}} was stopped by someone else"));
        Ok((state,))
    }}
}}
"#
        ),
    };
    format!("{header}{body}\nbindings::export!(Component with_types_in bindings);\n")
}

/// The http-server template: the repository's actor (actors/http-server, which the tests run),
/// with its bindings made from the project's own `wit/`.
fn http_server_body() -> &'static str {
    const ACTOR: &str = include_str!("../../../../actors/http-server/src/lib.rs");
    const BINDINGS_END: &str = "\n}\n";
    let start = ACTOR
        .find("mod bindings {")
        .expect("the actor has a bindings module");
    let end = start + ACTOR[start..].find(BINDINGS_END).expect("it ends") + BINDINGS_END.len();
    &ACTOR[end..]
}
