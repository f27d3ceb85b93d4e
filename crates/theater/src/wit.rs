//! The `theater:simple` WIT package, embedded so that `theater new` can give every project the
//! exact contract this runtime implements.

/// `(file name, contents)` of every file in `wit/`.
pub const FILES: &[(&str, &str)] = &[
    ("actor.wit", include_str!("../../../wit/actor.wit")),
    (
        "environment.wit",
        include_str!("../../../wit/environment.wit"),
    ),
    (
        "filesystem.wit",
        include_str!("../../../wit/filesystem.wit"),
    ),
    ("http.wit", include_str!("../../../wit/http.wit")),
    (
        "message-server.wit",
        include_str!("../../../wit/message-server.wit"),
    ),
    ("process.wit", include_str!("../../../wit/process.wit")),
    ("random.wit", include_str!("../../../wit/random.wit")),
    ("runtime.wit", include_str!("../../../wit/runtime.wit")),
    ("store.wit", include_str!("../../../wit/store.wit")),
    (
        "supervisor.wit",
        include_str!("../../../wit/supervisor.wit"),
    ),
    ("timing.wit", include_str!("../../../wit/timing.wit")),
    ("types.wit", include_str!("../../../wit/types.wit")),
    ("worlds.wit", include_str!("../../../wit/worlds.wit")),
];
