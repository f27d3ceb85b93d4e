//! The I/O families' settings under attenuation: each key has a rule, documented, and the
//! rules hold a child within its parent. (The runtime's own keys are checked in its unit
//! tests, `attenuation.rs`.)

use theater::attenuation::attenuate;
use theater::chain::Durability;
use theater::plugin::Refusal;
use theater::{Manifest, ManifestOrigin};

const BASE: &str = "name = \"a\"\nversion = \"0.1.0\"\ncomponent = \"a.wasm\"\n";

fn manifest(dir: &std::path::Path, extra: &str) -> Manifest {
    Manifest::parse_with(
        &format!("{BASE}{extra}"),
        ManifestOrigin::File(dir.join("manifest.toml")),
        &theater_handlers::builtin(),
    )
    .unwrap()
}

fn child(parent: &Manifest, extra: &str) -> Result<Manifest, Refusal> {
    let dir = parent.origin.base_dir().to_owned();
    attenuate(parent, manifest(&dir, extra), Durability::Batched)
}

#[test]
fn every_handler_key_has_a_rule() {
    let registry = theater_handlers::builtin();
    for name in registry.names() {
        for key in registry.keys(name) {
            assert!(
                !key.rule.is_empty(),
                "handler {name} key {} has no rule",
                key.key
            );
        }
    }
}

#[test]
fn every_handler_rule_is_documented_in_the_manifest_reference() {
    let doc = include_str!("../../../docs/manifest.md");
    let section = &doc[doc.find("## Attenuation").expect("an Attenuation section")..];
    let registry = theater_handlers::builtin();
    for name in registry.names() {
        for key in registry.keys(name) {
            assert!(
                section.contains(&format!("| `{name}` | `{}` |", key.key)),
                "docs/manifest.md, Attenuation, does not give the rule of handler {name} `{}`",
                key.key
            );
        }
    }
}

#[test]
fn a_child_gets_only_handlers_its_parent_has() {
    let dir = tempfile::tempdir().unwrap();
    let parent = manifest(dir.path(), "[[handler]]\ntype = \"message-server\"\n");
    let refusal = child(&parent, "[[handler]]\ntype = \"random\"\n").unwrap_err();
    assert_eq!(refusal.key, "type");
    assert!(
        refusal.to_string().contains("handler \"random\""),
        "{refusal}"
    );
}

#[test]
fn environment_allow_is_held_within_the_parents() {
    let dir = tempfile::tempdir().unwrap();
    let parent = manifest(
        dir.path(),
        "[[handler]]\ntype = \"environment\"\nallow = [\"HOME\"]\n",
    );
    let refusal = child(
        &parent,
        "[[handler]]\ntype = \"environment\"\nallow = [\"*\"]\n",
    )
    .unwrap_err();
    assert_eq!(refusal.key, "allow");
    assert!(
        refusal.to_string().starts_with("handler \"environment\""),
        "{refusal}"
    );
    assert!(
        child(
            &parent,
            "[[handler]]\ntype = \"environment\"\nallow = [\"HOME\"]\n"
        )
        .is_ok()
    );
}
