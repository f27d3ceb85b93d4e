//! A valid component that does not export `theater:simple/actor`: spawning it must fail.

mod bindings {
    wit_bindgen::generate!({
        inline: "
            package test:not-an-actor;
            world not-an-actor {
                export hello: func() -> string;
            }
        ",
    });
}

struct NotAnActor;

impl bindings::Guest for NotAnActor {
    fn hello() -> String {
        "hello".into()
    }
}

bindings::export!(NotAnActor with_types_in bindings);
