//! The demo actor: greets, then reports how long its own event chain already is.

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "theater:simple/default-actor",
    });
}

use bindings::exports::theater::simple::actor::Guest;
use bindings::theater::simple::runtime::{get_chain, log};

struct Hello;

impl Guest for Hello {
    fn init(state: Option<Vec<u8>>, params: (String,)) -> Result<(Option<Vec<u8>>,), String> {
        let (id,) = params;
        let greeting = state
            .as_deref()
            .map(String::from_utf8_lossy)
            .unwrap_or("world".into())
            .into_owned();
        log(&format!("Hello, {greeting}! I am actor {id}."));
        let chain = get_chain();
        log(&format!(
            "My chain already holds {} events; the last is a {}.",
            chain.events.len(),
            chain
                .events
                .last()
                .map(|e| e.event.event_type.as_str())
                .unwrap_or("nothing")
        ));
        Ok((Some(format!("greeted {greeting}").into_bytes()),))
    }
}

bindings::export!(Hello with_types_in bindings);
