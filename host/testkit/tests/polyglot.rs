//! The Python and JavaScript examples build, with the pinned toolchains, into
//! components of the standard component model that export dvhost's
//! `actions` and import nothing but dvhost's interfaces and WASI 0.2.

use std::path::Path;

use dvhost_testkit::polyglot::{js_guest, python_guest};
use wasmparser::{Encoding, Parser, Payload};

/// A component's preamble: `\0asm`, then version 0x0d and layer 1 (a
/// core module has version 1 and layer 0).
const COMPONENT_PREAMBLE: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

const ACTIONS: &str = "dvhost:plugin/actions@0.1.0";

/// The names a component imports and exports at its top level (not those of
/// the modules and components nested inside it).
struct Surface {
    imports: Vec<String>,
    exports: Vec<String>,
}

fn surface(bytes: &[u8]) -> Surface {
    let mut surface = Surface {
        imports: Vec::new(),
        exports: Vec::new(),
    };
    // `parse_all` walks nested modules and components too: each starts with
    // a `Version` payload and closes with `End`.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.expect("a well-formed component") {
            Payload::Version { encoding, .. } => {
                if depth == 0 {
                    assert_eq!(encoding, Encoding::Component, "not a component");
                }
                depth += 1;
            }
            Payload::End(_) => depth -= 1,
            Payload::ComponentImportSection(reader) if depth == 1 => {
                for import in reader {
                    surface
                        .imports
                        .push(import.expect("an import").name.name.to_owned());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 1 => {
                for export in reader {
                    surface
                        .exports
                        .push(export.expect("an export").name.name.to_owned());
                }
            }
            _ => {}
        }
    }
    surface
}

/// Whether a host that links dvhost's interfaces and WASI 0.2 can satisfy
/// `name`.
fn allowed_import(name: &str) -> bool {
    if let Some(interface) = name.strip_prefix("dvhost:plugin/") {
        return interface.ends_with("@0.1.0");
    }
    let Some((path, version)) = name
        .strip_prefix("wasi:")
        .and_then(|rest| rest.split_once('@'))
    else {
        return false;
    };
    path.contains('/') && version.starts_with("0.2.")
}

fn check_component(path: &Path) {
    let bytes = std::fs::read(path).expect("the built component");
    assert_eq!(
        bytes.get(..8),
        Some(&COMPONENT_PREAMBLE[..]),
        "{} does not start with a component preamble",
        path.display()
    );
    let surface = surface(&bytes);
    assert!(
        surface.exports.iter().any(|name| name == ACTIONS),
        "{} does not export {ACTIONS}: {:?}",
        path.display(),
        surface.exports
    );
    let foreign: Vec<_> = surface
        .imports
        .iter()
        .filter(|name| !allowed_import(name))
        .collect();
    assert!(foreign.is_empty(), "{} imports {foreign:?}", path.display());
    // Both examples call `records.query` and `log.write`.
    for interface in ["records", "log"] {
        let name = format!("dvhost:plugin/{interface}@0.1.0");
        assert!(
            surface.imports.contains(&name),
            "no {name} in {:?}",
            surface.imports
        );
    }
    // The host makes every request: no guest needs wasi:http (jco is run
    // with `-d http fetch-event` for that).
    assert!(
        !surface
            .imports
            .iter()
            .any(|name| name.starts_with("wasi:http/")),
        "{} imports wasi:http: {:?}",
        path.display(),
        surface.imports
    );
}

#[test]
fn python_guest_is_a_component_exporting_actions() {
    check_component(&python_guest());
}

#[test]
fn js_guest_is_a_component_exporting_actions() {
    check_component(&js_guest());
}

#[test]
fn import_filter_accepts_only_dvhost_and_wasi_0_2() {
    assert!(allowed_import("dvhost:plugin/records@0.1.0"));
    assert!(allowed_import("wasi:io/poll@0.2.9"));
    assert!(allowed_import("wasi:cli/stdout@0.2.12"));
    assert!(!allowed_import("wasi:io/poll@0.3.0"));
    assert!(!allowed_import("wasi:io/poll"));
    assert!(!allowed_import("dvhost:plugin/records@0.2.0"));
    assert!(!allowed_import("evil:net/socket@1.0.0"));
    assert!(!allowed_import("env"));
}
