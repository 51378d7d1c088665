//! Does nothing, as cheaply as possible: the baseline for measuring what
//! one plugin hook costs the gateway per request.

use gateway_plugin_sdk::{export_plugin, Manifest, Plugin, Request, RequestAction, RequestChanges};

struct Noop;

impl Plugin for Noop {
    fn manifest() -> Manifest {
        Manifest { on_request: true, ..Manifest::none() }
    }

    fn on_request(_req: Request) -> RequestAction {
        RequestAction::Continue(RequestChanges::none())
    }
}

export_plugin!(Noop);
