//! The example embedder runs its actor against its own family and replays the chain, the
//! family's export calls included.

#[tokio::test(flavor = "multi_thread")]
async fn an_embedders_own_family_runs_records_and_replays() {
    let dir = tempfile::tempdir().unwrap();
    let report = theater_example_embedder::run(test_actors::METRONOME.as_ref(), dir.path())
        .await
        .unwrap();
    assert_eq!(report.final_state, "3: tick 1 tick 2 tick 3");
    assert_eq!(report.ticks, 3);
    // init and the three ticks.
    assert_eq!(report.replayed_calls, 4);
    assert!(report.replay_matches, "{report:?}");
}

#[test]
fn the_family_left_out_is_refused_by_name() {
    let registry = theater_example_embedder::registry().unwrap();
    assert!(registry.names().contains(&"metronome"));
    let text = "name = \"a\"\nversion = \"0.1.0\"\ncomponent = \"a.wasm\"\n[[handler]]\ntype = \"http-client\"\n";
    let origin = theater::ManifestOrigin::Inline {
        base_dir: ".".into(),
    };
    let err = theater::Manifest::parse_with(text, origin, &registry).unwrap_err();
    assert!(err.to_string().contains("http-client"), "{err}");
}
