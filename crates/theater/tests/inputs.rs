//! The timing, random and environment handlers, through the dice actor (actors/dice): their
//! results reach the guest, respect the manifest, and are recorded in the chain.

mod common;

use common::{ask, chain_of, dice_manifest, harness};
use theater::ManifestOrigin;
use theater::chain::{EventKind, HostResult};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_timing_and_environment_reach_the_guest_and_are_recorded() {
    let h = harness();
    let dice = h
        .runtime
        .spawn(dice_manifest(r#"["PATH", "THEATER_TEST_*"]"#))
        .await
        .unwrap();

    for _ in 0..50 {
        let roll: u64 = ask(&dice, "roll").await.unwrap().parse().unwrap();
        assert!((1..=6).contains(&roll), "a die showed {roll}");
    }
    let float: f64 = ask(&dice, "float").await.unwrap().parse().unwrap();
    assert!((0.0..1.0).contains(&float));
    let uuid = ask(&dice, "uuid").await.unwrap();
    assert_eq!(uuid.len(), 36, "{uuid}");
    assert_eq!(uuid.as_bytes()[14], b'4', "a version 4 uuid: {uuid}");
    let bytes = ask(&dice, "bytes 16").await.unwrap();
    assert_eq!(bytes.len(), 32);
    assert_ne!(bytes, ask(&dice, "bytes 16").await.unwrap());
    let huge = ask(&dice, "bytes 4000000000").await.unwrap_err();
    assert!(huge.contains("at most 1048576 per call"), "{huge}");

    let now: u64 = ask(&dice, "now").await.unwrap().parse().unwrap();
    let system = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(
        now <= system && system - now < 60_000,
        "now {now}, system {system}"
    );
    let slept = ask(&dice, "sleep 30").await.unwrap();
    let ms: u64 = slept.strip_prefix("slept ").unwrap().parse().unwrap();
    assert!(ms >= 30, "{slept}");

    // Only the allowed variables are visible.
    let path = std::env::var("PATH").unwrap();
    assert_eq!(ask(&dice, "env PATH").await.unwrap(), path);
    assert_eq!(ask(&dice, "exists PATH").await.unwrap(), "true");
    assert_eq!(ask(&dice, "env HOME").await.unwrap(), "(unset)");
    assert_eq!(ask(&dice, "exists HOME").await.unwrap(), "false");
    let vars = ask(&dice, "vars").await.unwrap();
    assert!(vars.starts_with("PATH="), "{vars}");
    assert!(!vars.contains("HOME="), "{vars}");

    // The chain has every result: the roll the guest saw is the one recorded.
    h.runtime.flush().await.unwrap();
    let chain = chain_of(h.dir.path(), dice.id());
    let calls: Vec<(String, &HostResult)> = chain
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::HostCall(c) => Some((format!("{}.{}", c.interface, c.function), &c.result)),
            _ => None,
        })
        .collect();
    for function in [
        "theater:simple/random.random-range",
        "theater:simple/random.random-float",
        "theater:simple/random.generate-uuid",
        "theater:simple/random.random-bytes",
        "theater:simple/timing.now",
        "theater:simple/timing.sleep",
        "theater:simple/environment.get-var",
        "theater:simple/environment.exists",
        "theater:simple/environment.list-vars",
    ] {
        assert!(
            calls.iter().any(|(f, _)| f == function),
            "{function} not recorded"
        );
    }
    let recorded_uuid = calls
        .iter()
        .find(|(f, _)| f == "theater:simple/random.generate-uuid")
        .map(|(_, r)| match r {
            HostResult::Value(v) => v.clone(),
            other => panic!("{other:?}"),
        })
        .unwrap();
    // postcard: Result tag 0 (ok), then the string's varint length and bytes.
    assert_eq!(&recorded_uuid[2..], uuid.as_bytes());
}

#[test]
fn environment_allow_must_be_a_list_of_names() {
    let text = "name = \"d\"\nversion = \"1\"\ncomponent = \"d.wasm\"\n[[handler]]\ntype = \"environment\"\nallow = \"PATH\"\n";
    let err = common::parse(
        text,
        ManifestOrigin::Inline {
            base_dir: ".".into(),
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("`allow` must be a list"), "{err}");
    let text = text.replace("allow", "alow");
    let err = common::parse(
        &text,
        ManifestOrigin::Inline {
            base_dir: ".".into(),
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("did you mean `allow`"), "{err}");
}
