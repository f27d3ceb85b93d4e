//! The I/O benchmarks' actor (crates/theater-bench/src/io.rs): each request runs N host calls
//! in one export call, so the figures are the handlers' cost, not messaging's.
//!
//! Requests: `store N` (N times: store 1 KiB of fresh content in the `bench` store, then get
//! it back), `read N` (N reads of the 4 KiB file `data.4k`), `spawn N` (N processes of `true`,
//! one after another: each spawned when the last one's exit arrives; answered after the last).

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "theater:simple/io-bench-actor",
    });
}

use std::cell::RefCell;

use bindings::exports::theater::simple::actor::Guest as Actor;
use bindings::exports::theater::simple::message_server_client::Guest as Client;
use bindings::exports::theater::simple::process_handlers::Guest as ProcessHandlers;
use bindings::theater::simple::process::{self, OutputMode, ProcessConfig};
use bindings::theater::simple::types::ChannelAccept;
use bindings::theater::simple::{filesystem, message_server_host as msg, store};

type State = Option<Vec<u8>>;

/// The `spawn` request under way: its id and the processes still to run.
#[derive(Default)]
struct Spawning {
    request: String,
    remaining: u64,
}

thread_local! {
    static SPAWNING: RefCell<Spawning> = RefCell::default();
    /// Makes every stored value fresh content, across requests.
    static STORED: RefCell<u64> = const { RefCell::new(0) };
}

struct IoBench;

fn spawn_true() -> Result<u64, String> {
    process::os_spawn(&ProcessConfig {
        program: "true".into(),
        args: Vec::new(),
        cwd: None,
        env: Vec::new(),
        buffer_size: 4096,
        stdout_mode: OutputMode::Raw,
        stderr_mode: OutputMode::Raw,
        chunk_size: None,
        execution_timeout: None,
    })
}

fn number(text: &str) -> Result<u64, String> {
    text.trim().parse().map_err(|_| format!("io-bench: {text:?} is not a number"))
}

impl Actor for IoBench {
    fn init(state: State, _: (String,)) -> Result<(State,), String> {
        Ok((state,))
    }
}

impl Client for IoBench {
    fn handle_send(state: State, _: (Vec<u8>,)) -> Result<(State,), String> {
        Ok((state,))
    }

    fn handle_request(state: State, (id, m): (String, Vec<u8>)) -> Result<(State, (Option<Vec<u8>>,)), String> {
        let text = String::from_utf8_lossy(&m).into_owned();
        let (verb, n) = text.split_once(' ').unwrap_or((&text, "0"));
        let n = number(n)?;
        match verb {
            "store" => {
                let mut value = vec![b'v'; 1024];
                for _ in 0..n {
                    let i = STORED.with(|s| {
                        *s.borrow_mut() += 1;
                        *s.borrow()
                    });
                    value[..8].copy_from_slice(&i.to_le_bytes());
                    let kept = store::store("bench", &value)?;
                    let back = store::get("bench", &kept)?;
                    if back != value {
                        return Err("io-bench: the store gave back other bytes".into());
                    }
                }
            }
            "read" => {
                for _ in 0..n {
                    let bytes = filesystem::read_file("data.4k")?;
                    if bytes.len() != 4096 {
                        return Err(format!("io-bench: read {} bytes, not 4096", bytes.len()));
                    }
                }
            }
            "spawn" => {
                if n == 0 {
                    return Ok((state, (Some(b"ok".to_vec()),)));
                }
                SPAWNING.with(|s| *s.borrow_mut() = Spawning { request: id, remaining: n });
                spawn_true()?;
                // Answered from `handle-exit`, after the last process.
                return Ok((state, (None,)));
            }
            other => return Err(format!("io-bench: unknown request {other:?}")),
        }
        Ok((state, (Some(b"ok".to_vec()),)))
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

impl ProcessHandlers for IoBench {
    fn handle_stdout(state: State, _: (u64, Vec<u8>)) -> Result<(State,), String> {
        Ok((state,))
    }

    fn handle_stderr(state: State, _: (u64, Vec<u8>)) -> Result<(State,), String> {
        Ok((state,))
    }

    fn handle_exit(state: State, (pid, code): (u64, i32)) -> Result<(State,), String> {
        if code != 0 {
            return Err(format!("io-bench: process {pid} exited with {code}"));
        }
        let done = SPAWNING.with(|s| {
            let mut s = s.borrow_mut();
            s.remaining -= 1;
            (s.remaining == 0).then(|| s.request.clone())
        });
        match done {
            Some(request) => msg::respond_to_request(&request, b"ok")?,
            None => {
                spawn_true()?;
            }
        }
        Ok((state,))
    }
}

bindings::export!(IoBench with_types_in bindings);
