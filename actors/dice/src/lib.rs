//! Rolls dice. Everything it does depends on inputs from outside the sandbox (random numbers,
//! the clock, an environment variable), which the chain records, so a replay reproduces the run
//! exactly and skips the pauses.
//!
//! It also counts its calls in its own linear memory, outside the state the runtime keeps, and
//! writes that count into every entry: replay has to create fresh instances exactly where the
//! run did (spawn, restart, wake) for the states to match.
//!
//! Initial state `demo N`: roll N dice in `init`, 20 ms apart, then shut down. Otherwise it
//! answers requests (a send runs the same command and drops the answer): `roll`, `float`,
//! `uuid`, `bytes N`, `now`, `sleep MS`, `env NAME`, `exists NAME`, `vars`.

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "theater:simple/inputs-actor",
    });
}

use std::sync::atomic::{AtomicU64, Ordering};

use bindings::exports::theater::simple::actor::Guest as Actor;
use bindings::exports::theater::simple::message_server_client::Guest as Client;
use bindings::theater::simple::types::ChannelAccept;
use bindings::theater::simple::{environment, random, runtime, timing};

type State = Option<Vec<u8>>;

/// Calls made on this instance; a fresh instance starts again from zero.
static CALLS: AtomicU64 = AtomicU64::new(0);
/// Dice rolled by this instance.
static ROLLS: AtomicU64 = AtomicU64::new(0);

/// One die. The `loaded` build (actors/dice-loaded, for replay tests) never shows a six from its
/// fourth roll on: the kind of change `theater replay --component` exists to catch.
fn roll() -> Result<u64, String> {
    let rolls = ROLLS.fetch_add(1, Ordering::Relaxed) + 1;
    let sides = if cfg!(feature = "loaded") && rolls >= 4 { 5 } else { 6 };
    random::random_range(1, sides + 1)
}

struct Dice;

/// Appends `entry` and this instance's call count to the state.
fn journal(state: State, entry: &str) -> State {
    let calls = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
    let mut s = state.unwrap_or_default();
    s.extend_from_slice(format!("{entry}#{calls};").as_bytes());
    Some(s)
}

fn run(command: &str) -> Result<String, String> {
    let (verb, arg) = command.split_once(' ').unwrap_or((command, ""));
    Ok(match verb {
        "roll" => roll()?.to_string(),
        "float" => format!("{:.6}", random::random_float()?),
        "uuid" => random::generate_uuid()?,
        "bytes" => {
            let n = arg.parse().map_err(|_| format!("bytes: {arg:?} is not a number"))?;
            let bytes = random::random_bytes(n)?;
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        }
        "now" => timing::now().to_string(),
        "sleep" => {
            let ms = arg.parse().map_err(|_| format!("sleep: {arg:?} is not a number"))?;
            let before = timing::now();
            timing::sleep(ms)?;
            format!("slept {}", timing::now().saturating_sub(before))
        }
        "env" => environment::get_var(arg).unwrap_or_else(|| "(unset)".into()),
        "exists" => environment::exists(arg).to_string(),
        "vars" => {
            let vars = environment::list_vars();
            let names: Vec<String> = vars.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
            names.join(" ")
        }
        other => return Err(format!("dice: unknown command {other:?}")),
    })
}

fn demo(rolls: u32) -> Result<State, String> {
    let player = environment::get_var("DICE_PLAYER").unwrap_or_else(|| "someone".into());
    let start = timing::now();
    let mut state = journal(None, &format!("player {player}"));
    let mut total = 0;
    for i in 1..=rolls {
        if i > 1 {
            timing::sleep(20)?;
        }
        let roll = roll()?;
        total += roll;
        let at = timing::now().saturating_sub(start);
        runtime::log(&format!("{player} rolls {roll} (+{at} ms)"));
        state = journal(state, &format!("roll {roll}"));
    }
    runtime::log(&format!("{player} rolled {total} in {rolls} throws"));
    runtime::shutdown(Some(format!("total {total}").as_bytes()))?;
    Ok(journal(state, &format!("total {total}")))
}

impl Actor for Dice {
    fn init(state: State, _: (String,)) -> Result<(State,), String> {
        let text = String::from_utf8_lossy(state.as_deref().unwrap_or_default()).into_owned();
        if let Some(n) = text.strip_prefix("demo ") {
            let n = n.trim().parse().map_err(|_| format!("demo: {n:?} is not a number"))?;
            return Ok((demo(n)?,));
        }
        Ok((journal(state, "init"),))
    }
}

impl Client for Dice {
    fn handle_send(state: State, (m,): (Vec<u8>,)) -> Result<(State,), String> {
        let command = String::from_utf8_lossy(&m).into_owned();
        let answer = run(&command)?;
        Ok((journal(state, &format!("{command}={answer}")),))
    }

    fn handle_request(state: State, (_, m): (String, Vec<u8>)) -> Result<(State, (Option<Vec<u8>>,)), String> {
        let command = String::from_utf8_lossy(&m).into_owned();
        let answer = run(&command)?;
        let state = journal(state, &format!("{command}={answer}"));
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

bindings::export!(Dice with_types_in bindings);
