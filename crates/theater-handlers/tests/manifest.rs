//! Manifests read with every family this project ships: a misspelt I/O family is named, with
//! the family meant; one a registry left out is unknown to it.

use theater::{Manifest, ManifestOrigin};

const BASE: &str = "name = \"a\"\nversion = \"0.1.0\"\ncomponent = \"a.wasm\"\n";

fn origin() -> ManifestOrigin {
    ManifestOrigin::File("dir/manifest.toml".into())
}

#[test]
fn unknown_handler_type_is_named_with_suggestion() {
    let text = format!("{BASE}[[handler]]\ntype = \"file-system\"\n");
    let err = Manifest::parse_with(&text, origin(), &theater_handlers::builtin()).unwrap_err();
    let s = err.to_string();
    assert!(s.contains("unknown handler type \"file-system\""), "{s}");
    assert!(s.contains("did you mean \"filesystem\""), "{s}");
    assert!(s.contains(":4:"), "{s}");
}

#[test]
fn a_family_left_out_of_the_registry_is_unknown_to_it() {
    let registry = theater_handlers::builtin().without("process").unwrap();
    let text = format!("{BASE}[[handler]]\ntype = \"process\"\n");
    let err = Manifest::parse_with(&text, origin(), &registry).unwrap_err();
    assert!(
        err.to_string().contains("unknown handler type \"process\""),
        "{err}"
    );
    assert!(theater_handlers::builtin().without("runtime").is_err());
    assert!(registry.without("process").is_err());
}

#[test]
fn the_runtime_alone_knows_only_the_actor_model() {
    let text = format!("{BASE}[[handler]]\ntype = \"timing\"\n");
    let err = Manifest::parse(&text, origin()).unwrap_err();
    assert!(
        err.to_string().contains("unknown handler type \"timing\""),
        "{err}"
    );
    assert!(Manifest::parse_with(&text, origin(), &theater_handlers::builtin()).is_ok());
}
