//! Arbitrary bytes from an untrusted chain file or manifest never panic the runtime's readers:
//! the manifest parser, `describe` (what `theater events` prints) and the chain decoders
//! return an error or a line, and what they print has no control characters.

use proptest::prelude::*;
use theater::chain::{
    CallEnd, CallStart, ChainFile, Event, EventKind, Hash, HostCall, HostResult, Spawn,
};
use theater::{Manifest, ManifestOrigin, describe};

fn origin() -> ManifestOrigin {
    ManifestOrigin::Inline {
        base_dir: ".".into(),
    }
}

/// Names a crafted chain might hold: real interface and function names, their pieces, empty
/// strings, dots in odd places, multi-byte characters and terminal escapes.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(".".to_owned()),
        Just("é".to_owned()),
        Just("theater:simple/runtime".to_owned()),
        Just("theater:simple/message-server-host".to_owned()),
        Just("theater:simple/supervisor".to_owned()),
        Just("\u{1b}[2J\u{1b}[31mred".to_owned()),
        Just("log".to_owned()),
        Just("spawn".to_owned()),
        any::<String>(),
    ]
}

fn host_result() -> impl Strategy<Value = HostResult> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(HostResult::Value),
        any::<String>().prop_map(HostResult::Error),
        (any::<String>(), any::<u64>()).prop_map(|(actor_id, len)| HostResult::ActorChainRef {
            actor_id,
            len,
            head: Hash::of(b"x"),
        }),
    ]
}

fn event_kind() -> impl Strategy<Value = EventKind> {
    let bytes = || proptest::collection::vec(any::<u8>(), 0..64);
    prop_oneof![
        (
            name(),
            name(),
            bytes(),
            host_result(),
            proptest::option::of(name())
        )
            .prop_map(|(interface, function, params, result, message_id)| {
                EventKind::HostCall(HostCall {
                    interface: interface.into(),
                    function: function.into(),
                    params,
                    result,
                    message_id,
                })
            }),
        (name(), bytes(), proptest::option::of(name())).prop_map(|(export, params, sender)| {
            EventKind::CallStart(CallStart {
                export: export.into(),
                state: None,
                params,
                message_id: None,
                sender,
            })
        }),
        (name(), any::<String>()).prop_map(|(export, e)| EventKind::CallEnd(CallEnd {
            export: export.into(),
            outcome: Err(e),
            state: None,
        })),
        (name(), any::<String>(), proptest::option::of(name())).prop_map(
            |(name, manifest, parent)| EventKind::Spawn(Spawn {
                actor_id: "a".into(),
                name,
                component: Hash::of(b"c"),
                manifest: manifest.into(),
                parent,
                initial_state: None,
            })
        ),
        any::<String>().prop_map(|message| EventKind::Trap {
            kind: theater::chain::TrapKind::Other,
            message,
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn describe_never_panics_and_prints_no_control_characters(kind in event_kind()) {
        let line = describe::event(&kind);
        prop_assert!(!line.chars().any(char::is_control), "{line:?}");
        // And through the chain encoding and back, as `theater events` reads it.
        let event = Event { timestamp_ms: 0, kind };
        let decoded = Event::decode(&event.encode()).unwrap();
        prop_assert_eq!(describe::event(&decoded.kind), line);
    }

    #[test]
    fn describe_handles_any_payload_for_any_function(function in name(), payload in proptest::collection::vec(any::<u8>(), 0..128)) {
        let _ = describe::params(&function, &payload);
        let _ = describe::result(&function, &payload);
    }

    #[test]
    fn the_manifest_parser_returns_an_error_for_arbitrary_text(text in any::<String>()) {
        let _ = Manifest::parse_with(&text, origin(), &theater_handlers::builtin());
    }

    #[test]
    fn the_manifest_parser_survives_mangled_manifests(
        cut in 0usize..400,
        insert in any::<String>(),
    ) {
        let text = "name = \"a\"\nversion = \"0.1.0\"\ncomponent = \"a.wasm\"\ninit_state = \"s\"\n\
                    [[handler]]\ntype = \"environment\"\nallow = [\"HOME\", \"APP_*\"]\n\
                    [[handler]]\ntype = \"supervisor\"\nroot = \"sub\"\n\
                    [limits]\nmemory_mb = 8\n[messaging]\nmailbox_capacity = 3\n";
        let mut cut = cut.min(text.len());
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let mangled = format!("{}{insert}{}", &text[..cut], &text[cut..]);
        if let Err(e) = Manifest::parse_with(&mangled, origin(), &theater_handlers::builtin()) {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn an_export_file_of_arbitrary_bytes_is_an_error_not_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut file = theater::chain::MAGIC.to_vec();
        file.extend_from_slice(&bytes);
        for candidate in [&bytes, &file] {
            if let Ok(f) = ChainFile::decode(candidate) {
                let _ = f.verify();
                for e in &f.events {
                    if let Ok(event) = Event::decode(&e.bytes) {
                        let _ = describe::event(&event.kind);
                    }
                }
            }
        }
    }
}

#[test]
fn escape_keeps_text_and_escapes_terminal_controls() {
    assert_eq!(describe::escape("plain text é"), "plain text é");
    assert_eq!(
        describe::escape("a\u{1b}[2Jb\nc\u{202e}d"),
        "a\\u{1b}[2Jb\\nc\\u{202e}d"
    );
}
