//! The host side of `wit/gateway.wit`, generated. One file, so the rest of
//! the plugin layer names these types through a single path.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
});

pub use embassy::gateway::types as wit;
pub use exports::embassy::gateway::hooks::Guest as Hooks;
