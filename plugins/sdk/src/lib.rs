//! Guest SDK for Data Embassy Gateway plugins.
//!
//! Implement [`Plugin`] (every hook has a pass-through default), export it
//! with [`export_plugin!`], and build for `wasm32-wasip2`:
//!
//! ```ignore
//! use gateway_plugin_sdk::{export_plugin, Manifest, Plugin, Request, RequestAction, RequestChanges};
//!
//! struct Hello;
//! impl Plugin for Hello {
//!     fn manifest() -> Manifest { Manifest { on_request: true, ..Manifest::none() } }
//!     fn on_request(req: Request) -> RequestAction {
//!         RequestAction::Continue(RequestChanges::none().set_header("x-hello", &req.registry))
//!     }
//! }
//! export_plugin!(Hello);
//! ```
//!
//! The WIT contract is `wit/gateway.wit` at the repository root; the
//! generated bindings stay in [`bindings`] and rarely need touching.

pub mod host;
mod types;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "__export_plugin_bindings",
    });
}

pub use bindings::embassy::gateway::types::{
    Freshness, Health, HostError, Manifest, Request, RequestAction, RequestChanges, Response,
    ResponseChanges, ServedBy, SiteInfo, SiteKind, UpstreamResponse,
};
pub use serde_json::{self, json, Value};
pub use types::Headers;

/// A plugin. Hooks are plain functions: a plugin keeps no state between
/// calls (each request may get a fresh instance); shared state goes through
/// [`host::kv`].
pub trait Plugin {
    /// Which hooks do something and which bodies they need; asked once at load.
    fn manifest() -> Manifest;

    /// After routing, before a site is chosen. Default: go on untouched.
    fn on_request(_req: Request) -> RequestAction {
        RequestAction::Continue(RequestChanges::none())
    }

    /// The site to try first, or `None` for the gateway's own order.
    fn choose_site(_req: Request, _sites: Vec<SiteInfo>) -> Option<String> {
        None
    }

    /// After a site answered. Default: keep the response.
    fn on_response(_req: Request, _served: ServedBy, _resp: UpstreamResponse) -> Option<ResponseChanges> {
        None
    }
}

/// Connects a [`Plugin`] to the generated bindings; used by [`export_plugin!`].
#[doc(hidden)]
pub struct Adapter<P>(std::marker::PhantomData<P>);

impl<P: Plugin> bindings::exports::embassy::gateway::hooks::Guest for Adapter<P> {
    fn describe() -> Manifest {
        P::manifest()
    }
    fn on_request(req: Request) -> RequestAction {
        P::on_request(req)
    }
    fn choose_site(req: Request, sites: Vec<SiteInfo>) -> Option<String> {
        P::choose_site(req, sites)
    }
    fn on_response(req: Request, served: ServedBy, resp: UpstreamResponse) -> Option<ResponseChanges> {
        P::on_response(req, served, resp)
    }
}

/// Exports a type implementing [`Plugin`] as the component's hooks.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        type __GatewayPluginAdapter = $crate::Adapter<$plugin>;
        $crate::bindings::__export_plugin_bindings!(__GatewayPluginAdapter with_types_in $crate::bindings);
    };
}
