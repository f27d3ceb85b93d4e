//! The actor of `examples/embedder`: it imports `example:metronome/metronome`, which only the
//! embedder's own handler provides, and exports `example:metronome/ticks`, which that handler
//! calls. `init` asks for the ticks its initial state names (`COUNT INTERVAL_MS`, default
//! `3 10`); each tick is added to the state (`tick 1, tick 2, ...`), and after the last it
//! shuts down with that state.

mod bindings {
    wit_bindgen::generate!({
        path: ["../../wit", "wit"],
        world: "example:metronome/metronome-actor",
        generate_all,
    });
}

use bindings::example::metronome::metronome;
use bindings::exports::example::metronome::ticks::Guest as Ticks;
use bindings::exports::theater::simple::actor::Guest as Actor;
use bindings::theater::simple::runtime;

type State = Option<Vec<u8>>;

struct Metronome;

/// The ticks asked for, from the initial state.
fn asked(state: &State) -> (u32, u64) {
    let text = state.as_deref().map(String::from_utf8_lossy).unwrap_or_default();
    let mut words = text.split_whitespace();
    let count = words.next().and_then(|w| w.parse().ok()).unwrap_or(3);
    let interval = words.next().and_then(|w| w.parse().ok()).unwrap_or(10);
    (count, interval)
}

impl Actor for Metronome {
    fn init(state: State, _: (String,)) -> Result<(State,), String> {
        let (count, interval) = asked(&state);
        metronome::start(count, interval)?;
        runtime::log(&format!("asked for {count} ticks, {interval} ms apart"));
        Ok((Some(format!("{count}:").into_bytes()),))
    }
}

impl Ticks for Metronome {
    fn handle_tick(state: State, (n,): (u32,)) -> Result<(State,), String> {
        let mut text = String::from_utf8(state.unwrap_or_default()).map_err(|e| e.to_string())?;
        let count: u32 = text.split(':').next().and_then(|c| c.parse().ok()).unwrap_or(0);
        text.push_str(&format!(" tick {n}"));
        if n >= count {
            runtime::shutdown(Some(text.as_bytes()))?;
        }
        Ok((Some(text.into_bytes()),))
    }
}

bindings::export!(Metronome with_types_in bindings);
