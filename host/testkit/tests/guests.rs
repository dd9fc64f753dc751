//! Builds every Rust guest from source and checks what came out: components
//! (not core modules) that export dvhost's `actions` and import what each
//! fixture is meant to import.

use dvhost_testkit::{HELLO, HOSTILE, RUST_GUESTS, UNKNOWN_IMPORT, component_surface, rust_guest};

/// `\0asm`, then the component layer's version: 0x0d 0x00, layer 0x01 0x00.
const COMPONENT_MAGIC: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

const ACTIONS: &str = "dvhost:plugin/actions@0.1.0";

fn read(path: &std::path::Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

#[test]
fn every_rust_guest_is_a_component_exporting_actions() {
    for guest in RUST_GUESTS {
        let path = rust_guest(guest);
        let bytes = read(&path);
        assert_eq!(
            bytes.get(..8),
            Some(&COMPONENT_MAGIC[..]),
            "{guest} ({}) does not start with the component header",
            path.display()
        );
        let surface = component_surface(&bytes);
        assert!(surface.exports(ACTIONS), "{guest}: {surface:?}");
    }
}

#[test]
fn hostile_guest_imports_the_dataverse_and_socket_interfaces() {
    let surface = component_surface(&read(&rust_guest(HOSTILE)));
    assert_eq!(surface.exports, [ACTIONS]);
    for prefix in [
        "dvhost:plugin/records@0.1.0",
        "dvhost:plugin/metadata@0.1.0",
        "dvhost:plugin/log@0.1.0",
        "wasi:sockets/tcp-create-socket@",
        "wasi:sockets/ip-name-lookup@",
        "wasi:filesystem/preopens@",
        "wasi:cli/environment@",
    ] {
        assert!(
            surface.imports_prefix(prefix),
            "no {prefix}: {:?}",
            surface.imports
        );
    }
}

#[test]
fn unknown_import_guest_imports_evil_net_raw() {
    let surface = component_surface(&read(&rust_guest(UNKNOWN_IMPORT)));
    assert!(
        surface.imports.iter().any(|name| name == "evil:net/raw"),
        "{:?}",
        surface.imports
    );
}

#[test]
fn hello_imports_records_but_no_sockets() {
    let surface = component_surface(&read(&rust_guest(HELLO)));
    assert!(surface.imports_prefix("dvhost:plugin/records@0.1.0"));
    assert!(
        !surface.imports_prefix("wasi:sockets/"),
        "{:?}",
        surface.imports
    );
}

#[test]
#[should_panic(expected = "is not a Rust guest")]
fn unknown_guest_names_panic() {
    rust_guest("no-such-guest");
}
