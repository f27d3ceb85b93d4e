//! Rust types for every WIT type of `theater:simple`, generated from `wit/` so that host
//! signatures cannot drift from the contract. The generated `Host` traits are unused: host
//! functions are registered through the recording wrapper in `handlers`.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "theater:simple/everything",
    additional_derives: [serde::Serialize, serde::Deserialize],
});

// Every WIT type is recorded in the chain through its serde impls (postcard).
crate::record_with_serde!(
    theater::simple::filesystem::CommandSuccess,
    theater::simple::filesystem::CommandError,
    theater::simple::filesystem::CommandResult,
    theater::simple::http_types::HttpRequest,
    theater::simple::http_types::HttpResponse,
    theater::simple::http_types::TlsConfig,
    theater::simple::http_types::ServerConfig,
    theater::simple::http_types::ServerInfo,
    theater::simple::http_types::MiddlewareResult,
    theater::simple::websocket_types::MessageType,
    theater::simple::websocket_types::WebsocketMessage,
    theater::simple::process::OutputMode,
    theater::simple::process::ProcessConfig,
    theater::simple::process::ProcessStatus,
    theater::simple::store::ContentRef,
    theater::simple::types::ChannelAccept,
    theater::simple::types::Event,
    theater::simple::types::MetaEvent,
    theater::simple::types::Chain,
    theater::simple::types::ChainEvent,
    theater::simple::types::WitErrorType,
    theater::simple::types::WitActorError,
);
