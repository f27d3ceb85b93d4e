//! The WIT package: it parses, it has every interface of the spec, and the runtime registers
//! every function of every interface it implements.

use std::collections::BTreeSet;
use std::path::Path;

use wit_parser::Resolve;

fn resolve() -> Resolve {
    let mut resolve = Resolve::default();
    resolve
        .push_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit"))
        .expect("the theater:simple package parses");
    resolve
}

fn functions_of(resolve: &Resolve, interface: &str) -> BTreeSet<String> {
    let (_, iface) = resolve
        .interfaces
        .iter()
        .find(|(id, _)| resolve.id_of(*id).as_deref() == Some(interface))
        .unwrap_or_else(|| panic!("{interface} is missing from wit/"));
    iface.functions.keys().cloned().collect()
}

#[test]
fn package_has_every_interface_of_the_spec() {
    let resolve = resolve();
    let names: BTreeSet<String> = resolve
        .interfaces
        .iter()
        .filter_map(|(id, _)| resolve.id_of(id))
        .collect();
    for expected in [
        "types",
        "actor",
        "runtime",
        "message-server-host",
        "message-server-client",
        "supervisor",
        "supervisor-handlers",
        "store",
        "timing",
        "random",
        "environment",
        "filesystem",
        "process",
        "process-handlers",
        "http-types",
        "websocket-types",
        "http-client",
        "http-framework",
        "http-handlers",
    ] {
        assert!(
            names.contains(&format!("theater:simple/{expected}")),
            "missing {expected}: {names:?}"
        );
    }
    assert!(
        resolve
            .packages
            .iter()
            .any(|(_, p)| p.name.to_string() == "theater:simple")
    );
}

#[test]
fn every_handler_interface_is_in_the_package() {
    let resolve = resolve();
    let registry = theater_handlers::builtin();
    for name in registry.names() {
        for interface in registry.interfaces(name).unwrap() {
            functions_of(&resolve, interface);
        }
    }
}

#[test]
fn every_function_of_every_implemented_interface_is_registered() {
    let resolve = resolve();
    let registry = theater_handlers::builtin();
    for name in registry.names() {
        if !registry.is_implemented(name) {
            continue;
        }
        let registered = registry.registered_functions(name).unwrap();
        for interface in registry.interfaces(name).unwrap() {
            let expected = functions_of(&resolve, interface);
            let got: BTreeSet<String> = registered
                .iter()
                .filter(|(i, _)| i == interface)
                .map(|(_, f)| f.to_string())
                .collect();
            assert_eq!(got, expected, "{interface}");
        }
    }
}

#[test]
fn embedded_wit_matches_the_wit_directory() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit");
    let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let embedded: BTreeSet<String> = theater::wit::FILES
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    assert_eq!(embedded, on_disk);
}
