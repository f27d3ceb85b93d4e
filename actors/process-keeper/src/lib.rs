//! A test actor driven by its messages, so one component exercises every function of `process`
//! and `process-handlers`. A request is a command, `VERB ARGS` (split at spaces); it answers
//! `ok VALUE` or `err MESSAGE`. Output and exits are journaled in the state (`out:PID:TEXT,`,
//! `err:PID:TEXT,`, `exit:PID:CODE,`), which `state` prints.
//!
//! `spawn [KEY=VALUE...] -- PROGRAM ARGS...` (keys: `mode` raw|lines|json|chunked, `err-mode`,
//! `chunk`, `timeout` ms, `cwd`, `env` NAME=VALUE, `buffer`; `%20` in an argument is a space), `stdin PID TEXT`, `status PID`,
//! `signal PID N`, `kill PID`, `state`, `panic` (traps). An initial state `init:COMMAND` runs
//! COMMAND in `init` and logs its answer.

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "theater:simple/process-actor",
    });
}

use bindings::exports::theater::simple::actor::Guest as Actor;
use bindings::exports::theater::simple::message_server_client::Guest as Client;
use bindings::theater::simple::types::ChannelAccept;
use bindings::exports::theater::simple::process_handlers::Guest as ProcessHandlers;
use bindings::theater::simple::process::{self, OutputMode, ProcessConfig};

type State = Option<Vec<u8>>;

struct Keeper;

fn shown<T: core::fmt::Display>(r: Result<T, String>) -> String {
    match r {
        Ok(v) => format!("ok {v}").trim_end().to_string(),
        Err(e) => format!("err {e}"),
    }
}

fn number(text: &str) -> Result<u64, String> {
    text.trim().parse().map_err(|_| format!("keeper: {text:?} is not a number"))
}

fn journal(state: State, entry: &str) -> State {
    let mut s = state.unwrap_or_default();
    s.extend_from_slice(entry.as_bytes());
    s.push(b',');
    Some(s)
}

fn mode(text: &str) -> Result<OutputMode, String> {
    Ok(match text {
        "raw" => OutputMode::Raw,
        "lines" => OutputMode::LineByLine,
        "json" => OutputMode::Json,
        "chunked" => OutputMode::Chunked,
        other => return Err(format!("keeper: no output mode {other:?}")),
    })
}

/// `[KEY=VALUE...] -- PROGRAM ARGS...` as a process config.
fn config(args: &[&str]) -> Result<ProcessConfig, String> {
    let split = args.iter().position(|a| *a == "--").ok_or("keeper: spawn needs `--`")?;
    let (options, command) = (&args[..split], &args[split + 1..]);
    let (program, rest) = command.split_first().ok_or("keeper: spawn needs a program")?;
    let mut config = ProcessConfig {
        program: program.to_string(),
        args: rest.iter().map(|a| a.replace("%20", " ")).collect(),
        cwd: None,
        env: Vec::new(),
        buffer_size: 4096,
        stdout_mode: OutputMode::Raw,
        stderr_mode: OutputMode::Raw,
        chunk_size: None,
        execution_timeout: None,
    };
    for option in options {
        let (key, value) = option.split_once('=').ok_or("keeper: options are KEY=VALUE")?;
        match key {
            "mode" => config.stdout_mode = mode(value)?,
            "err-mode" => config.stderr_mode = mode(value)?,
            "chunk" => config.chunk_size = Some(number(value)? as u32),
            "timeout" => config.execution_timeout = Some(number(value)?),
            "cwd" => config.cwd = Some(value.to_string()),
            "buffer" => config.buffer_size = number(value)? as u32,
            "env" => {
                let (k, v) = value.split_once('=').ok_or("keeper: env=NAME=VALUE")?;
                config.env.push((k.to_string(), v.to_string()));
            }
            other => return Err(format!("keeper: no spawn option {other:?}")),
        }
    }
    Ok(config)
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
        // Processes.
        "spawn" => shown(process::os_spawn(&config(&args[1..])?)),
        "stdin" => shown(process::os_write_stdin(number(arg(1))?, rest(2).as_bytes())),
        "status" => shown(process::os_status(number(arg(1))?).map(|s| {
            format!("running={} exit={:?}", s.running, s.exit_code)
        })),
        "signal" => unit(process::os_signal(number(arg(1))?, number(arg(2))? as u32)),
        "kill" => unit(process::os_kill(number(arg(1))?)),
        "panic" => panic!("keeper told to panic"),
        "state" => String::from_utf8_lossy(state.as_deref().unwrap_or_default()).into_owned(),
        other => return Err(format!("keeper: unknown command {other:?}")),
    })
}

impl Actor for Keeper {
    fn init(state: State, _: (String,)) -> Result<(State,), String> {
        let text = String::from_utf8_lossy(state.as_deref().unwrap_or_default()).into_owned();
        if let Some(command) = text.strip_prefix("init:") {
            let answer = run(&None, command.trim_end())?;
            bindings::theater::simple::runtime::log(&format!("init: {answer}"));
            return Ok((None,));
        }
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

impl ProcessHandlers for Keeper {
    fn handle_stdout(state: State, (pid, data): (u64, Vec<u8>)) -> Result<(State,), String> {
        Ok((journal(state, &format!("out:{pid}:{}", String::from_utf8_lossy(&data))),))
    }

    fn handle_stderr(state: State, (pid, data): (u64, Vec<u8>)) -> Result<(State,), String> {
        Ok((journal(state, &format!("err:{pid}:{}", String::from_utf8_lossy(&data))),))
    }

    fn handle_exit(state: State, (pid, code): (u64, i32)) -> Result<(State,), String> {
        Ok((journal(state, &format!("exit:{pid}:{code}")),))
    }
}


bindings::export!(Keeper with_types_in bindings);
