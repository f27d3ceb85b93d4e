//! A test actor driven by its messages, so one component exercises every function of
//! `filesystem`. A request is a command, `VERB ARGS` (split at spaces); it answers `ok VALUE` or
//! `err MESSAGE`.
//!
//! `read PATH`, `read-len PATH`, `write PATH TEXT`, `write-big PATH BYTES`, `ls PATH`, `rm PATH`,
//! `mkdir PATH`, `rmdir PATH`, `exists PATH`, `exec DIR PROGRAM ARGS...`, `nix DIR COMMAND`.

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "theater:simple/filesystem-actor",
    });
}

use bindings::exports::theater::simple::actor::Guest as Actor;
use bindings::exports::theater::simple::message_server_client::Guest as Client;
use bindings::theater::simple::types::ChannelAccept;
use bindings::theater::simple::filesystem::{self as fs, CommandResult};

type State = Option<Vec<u8>>;

struct Keeper;

fn shown<T: core::fmt::Display>(r: Result<T, String>) -> String {
    match r {
        Ok(v) => format!("ok {v}").trim_end().to_string(),
        Err(e) => format!("err {e}"),
    }
}

fn joined(items: impl IntoIterator<Item = String>) -> String {
    items.into_iter().collect::<Vec<_>>().join(" ")
}

fn number(text: &str) -> Result<u64, String> {
    text.trim().parse().map_err(|_| format!("keeper: {text:?} is not a number"))
}

fn command_result(r: Result<CommandResult, String>) -> String {
    shown(r.map(|r| match r {
        CommandResult::Success(s) => {
            format!("exit={} stdout={:?} stderr={:?}", s.exit_code, s.stdout, s.stderr)
        }
        CommandResult::Error(e) => format!("error {}", e.message),
    }))
}


/// Runs one command; returns the answer.
fn run(state: &State, command: &str) -> Result<String, String> {
    let args: Vec<&str> = command.split(' ').collect();
    let arg = |i: usize| args.get(i).copied().unwrap_or("");
    // Everything from argument `i` on, spaces kept.
    let rest = |i: usize| args.get(i..).map(|a| a.join(" ")).unwrap_or_default();
    let text = |r: Result<Vec<u8>, String>| shown(r.map(|b| String::from_utf8_lossy(&b).into_owned()));
    let unit = |r: Result<(), String>| shown(r.map(|()| ""));
    let _ = (&text, &unit, &rest, state);
    Ok(match arg(0) {
        // Files.
        "read" => text(fs::read_file(arg(1))),
        "read-len" => shown(fs::read_file(arg(1)).map(|b| b.len())),
        "write" => unit(fs::write_file(arg(1), &rest(2))),
        "write-big" => unit(fs::write_file(arg(1), &"x".repeat(number(arg(2))? as usize))),
        "ls" => shown(fs::list_files(arg(1)).map(|mut names| {
            names.sort();
            joined(names)
        })),
        "rm" => unit(fs::delete_file(arg(1))),
        "mkdir" => unit(fs::create_dir(arg(1))),
        "rmdir" => unit(fs::delete_dir(arg(1))),
        "exists" => shown(fs::path_exists(arg(1))),
        "exec" => {
            let args: Vec<String> = args.get(3..).unwrap_or_default().iter().map(|a| a.to_string()).collect();
            command_result(fs::execute_command(arg(1), arg(2), &args))
        }
        "nix" => command_result(fs::execute_nix_command(arg(1), &rest(2))),
        other => return Err(format!("keeper: unknown command {other:?}")),
    })
}

impl Actor for Keeper {
    fn init(state: State, _: (String,)) -> Result<(State,), String> {
        Ok((state,))
    }
}

impl Client for Keeper {
    fn handle_send(state: State, (m,): (Vec<u8>,)) -> Result<(State,), String> {
        run(&state, &String::from_utf8_lossy(&m))?;
        Ok((state,))
    }

    fn handle_request(state: State, (_, m): (String, Vec<u8>)) -> Result<(State, (Option<Vec<u8>>,)), String> {
        let answer = run(&state, &String::from_utf8_lossy(&m))?;
        Ok((state, (Some(answer.into_bytes()),)))
    }

    fn handle_channel_open(state: State, _: (String, Vec<u8>)) -> Result<(State, (ChannelAccept,)), String> {
        Ok((state, (ChannelAccept { accepted: false, message: None },)))
    }

    fn handle_channel_message(state: State, _: (String, Vec<u8>)) -> Result<(State,), String> {
        Ok((state,))
    }

    fn handle_channel_close(state: State, _: (String,)) -> Result<(State,), String> {
        Ok((state,))
    }
}

bindings::export!(Keeper with_types_in bindings);
