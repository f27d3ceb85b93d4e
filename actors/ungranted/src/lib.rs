//! Imports `timing`, which its test manifests do not grant: spawning it must fail.

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        inline: "
            package test:ungranted;
            world ungranted {
                import theater:simple/runtime;
                import theater:simple/timing;
                export theater:simple/actor;
            }
        ",
        world: "test:ungranted/ungranted",
        generate_all,
    });
}

struct Ungranted;

impl bindings::exports::theater::simple::actor::Guest for Ungranted {
    fn init(state: Option<Vec<u8>>, _: (String,)) -> Result<(Option<Vec<u8>>,), String> {
        let now = bindings::theater::simple::timing::now();
        bindings::theater::simple::runtime::log(&format!("now {now}"));
        Ok((state,))
    }
}

bindings::export!(Ungranted with_types_in bindings);
