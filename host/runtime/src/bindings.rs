//! The one `bindgen!` of the `plugin` world (`wit/plugin.wit`).
//!
//! Imports are async (they await the Dataverse backend; to the guest they
//! still block) and trappable (a forged page handle ends the call). The page
//! resource maps to [`PageCursor`](crate::records::PageCursor), which lives
//! only in the invocation's handle table.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "dvhost:plugin/plugin",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "dvhost:plugin/records.page": crate::records::PageCursor,
    },
});

pub use dvhost::plugin::{log, metadata, records, types};
pub use exports::dvhost::plugin::actions;
