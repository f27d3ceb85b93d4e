//! Errors the runtime reports. Each displays as one line that names the actor or file and the
//! problem; extra detail (a guest backtrace) is kept in a field.

use theater_chain::TrapKind;

use crate::manifest::ManifestError;

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("component {origin}: {message}")]
    Component { origin: String, message: String },
    #[error(
        "component {origin} does not export `theater:simple/actor` with `init`: an actor must implement that interface"
    )]
    NotAnActor { origin: String },
    #[error(
        "actor {actor} imports `{interface}`, which its manifest does not grant: add a `[[handler]]` with `type = \"{handler}\"` to {manifest}"
    )]
    Ungranted {
        actor: String,
        interface: String,
        handler: &'static str,
        manifest: String,
    },
    #[error(
        "actor {actor} imports `{interface}`, which no handler type of this runtime provides (see docs/manifest.md for the handler types and their interfaces)"
    )]
    UnknownImport { actor: String, interface: String },
    #[error(
        "actor {actor}: handler type \"{handler}\" is part of the API but this build does not implement it yet"
    )]
    NotImplemented {
        actor: String,
        handler: &'static str,
    },
    /// The manifest grants a handler family the runtime was not given, or another family of
    /// that name (it was parsed with another registry).
    #[error("actor {actor}: handler type \"{handler}\" {why}")]
    Unregistered {
        actor: String,
        handler: &'static str,
        why: &'static str,
    },
    #[error("actor {actor}: spawn refused: {refusal}")]
    Refused {
        actor: String,
        refusal: crate::family::Refusal,
    },
    #[error("actor {actor}: {message}")]
    InitState { actor: String, message: String },
    #[error("actor {actor} ({id}): init returned an error: {message}")]
    InitFailed {
        actor: String,
        id: String,
        message: String,
    },
    #[error("actor {actor} ({id}) trapped in init: {message}")]
    InitTrapped {
        actor: String,
        id: String,
        kind: TrapKind,
        message: String,
        /// The guest's stack at the trap, one frame per line, where wasmtime gives one.
        backtrace: Option<String>,
    },
    #[error("actor {actor}: {message}")]
    Runtime { actor: String, message: String },
}

impl SpawnError {
    /// The guest backtrace, for errors that have one.
    pub fn backtrace(&self) -> Option<&str> {
        match self {
            SpawnError::InitTrapped { backtrace, .. } => backtrace.as_deref(),
            _ => None,
        }
    }
}

/// The runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("creating the WebAssembly engine: {0}")]
    Engine(String),
    #[error(transparent)]
    Chain(#[from] theater_chain::StoreError),
    #[error(transparent)]
    Content(#[from] theater_store::StoreError),
    #[error("data dir lock {path}: {message}")]
    Lock { path: String, message: String },
    #[error(
        "another theater process is running on {0}: resume only after it has exited, or its actors would be run twice"
    )]
    InUse(String),
}

/// An error and its causes on one line.
pub(crate) fn one_line(e: &wasmtime::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        let text = text.lines().next().unwrap_or("").trim();
        if text.is_empty() || out.contains(text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(text);
    }
    out
}
