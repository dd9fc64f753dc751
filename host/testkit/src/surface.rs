//! What a component shows the host: the names it imports and exports at its
//! top level, read with `wasmparser`, for tests that check a guest asks for
//! exactly the interfaces it should.

use wasmparser::{Encoding, Parser, Payload};

/// A component's top-level imports and exports, by name
/// (`dvhost:plugin/records@0.1.0`, `wasi:cli/environment@0.2.6`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Surface {
    /// The names it imports.
    pub imports: Vec<String>,
    /// The names it exports.
    pub exports: Vec<String>,
}

impl Surface {
    /// Whether it imports a name starting with `prefix`.
    pub fn imports_prefix(&self, prefix: &str) -> bool {
        self.imports.iter().any(|name| name.starts_with(prefix))
    }

    /// Whether it exports `name`.
    pub fn exports(&self, name: &str) -> bool {
        self.exports.iter().any(|export| export == name)
    }
}

/// The top-level surface of the component in `bytes`.
///
/// # Panics
///
/// If `bytes` is not a well-formed component (a core module included).
pub fn component_surface(bytes: &[u8]) -> Surface {
    let mut surface = Surface::default();
    // `parse_all` walks nested modules and components too: each starts with
    // a `Version` payload and closes with `End`; depth 1 is the component's
    // own sections.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.expect("a well-formed component") {
            Payload::Version { encoding, .. } => {
                if depth == 0 {
                    assert_eq!(encoding, Encoding::Component, "not a component");
                }
                depth += 1;
            }
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 1 => {
                for import in reader {
                    let import = import.expect("an import");
                    surface.imports.push(import.name.name.to_owned());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 1 => {
                for export in reader {
                    let export = export.expect("an export");
                    surface.exports.push(export.name.name.to_owned());
                }
            }
            _ => {}
        }
    }
    surface
}
