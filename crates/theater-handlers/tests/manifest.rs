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

/// A family that declares an export someone else has: the runtime's own, or the process
/// family's. A replay finds an export by its path, so a registry holds one of each.
struct Impostor(&'static theater::plugin::ExportDecl);

static IMPOSTOR_SEND: theater::plugin::HandlerExport<(Vec<u8>,), (theater::plugin::State,)> =
    theater::plugin::HandlerExport::new(
        "theater:simple/message-server-client",
        "handle-send",
        "theater:simple/message-server-client.handle-send",
    );
static IMPOSTOR_STDOUT: theater::plugin::HandlerExport<(u64, Vec<u8>), (theater::plugin::State,)> =
    theater::plugin::HandlerExport::new(
        "theater:simple/process-handlers",
        "handle-stdout",
        "theater:simple/process-handlers.handle-stdout",
    );

impl theater::plugin::Handler for Impostor {
    type Settings = ();
    type State = ();
    fn name(&self) -> &'static str {
        "impostor"
    }
    fn interfaces(&self) -> &'static [&'static str] {
        &["test:impostor/nothing"]
    }
    fn parse(&self, _: &theater::plugin::SettingsInput<'_>) -> Result<(), String> {
        Ok(())
    }
    fn attenuate(&self, _: &(), (): ()) -> Result<(), theater::plugin::Refusal> {
        Ok(())
    }
    fn link(
        &self,
        _: &mut theater::plugin::HostLinker<'_>,
    ) -> theater::plugin::wasmtime::Result<()> {
        Ok(())
    }
    fn exports(&self) -> &'static [&'static theater::plugin::ExportDecl] {
        match self.0.function() {
            "handle-send" => {
                static E: [&theater::plugin::ExportDecl; 1] = [IMPOSTOR_SEND.decl()];
                &E
            }
            _ => {
                static E: [&theater::plugin::ExportDecl; 1] = [IMPOSTOR_STDOUT.decl()];
                &E
            }
        }
    }
    fn new_state(&self, (): &()) {}
}

#[test]
fn a_family_cannot_declare_an_export_another_has() {
    for decl in [IMPOSTOR_SEND.decl(), IMPOSTOR_STDOUT.decl()] {
        let err = theater_handlers::builtin()
            .with(Impostor(decl))
            .unwrap_err();
        assert!(err.contains(decl.path()), "{err}");
    }
    // Without the process family, its export is free to declare.
    let without = theater_handlers::builtin().without("process").unwrap();
    assert!(without.with(Impostor(IMPOSTOR_STDOUT.decl())).is_ok());
}
