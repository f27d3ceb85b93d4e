//! The smallest actor: `init` keeps its state and does nothing else. Used by the spawn benchmark.

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "theater:simple/default-actor",
    });
}

struct Minimal;

impl bindings::exports::theater::simple::actor::Guest for Minimal {
    fn init(state: Option<Vec<u8>>, _: (String,)) -> Result<(Option<Vec<u8>>,), String> {
        Ok((state,))
    }
}

bindings::export!(Minimal with_types_in bindings);
