//! Rust types for every WIT type of `theater:simple`, generated from `wit/` so that host
//! signatures cannot drift from the contract. The generated `Host` traits are unused: host
//! functions are registered through the recording wrapper in `handlers`.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "theater:simple/everything",
    additional_derives: [serde::Serialize, serde::Deserialize],
});
