//! Builds the workspace's Rust guests for `wasm32-wasip2` once per process
//! and finds their components. The build uses its own target directory,
//! `target/guests`, because the cargo running the tests may hold the lock of
//! `target/` for the whole run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The example plugin `examples/hello` (actions `hello`, `noop`,
/// `retrieve-account`).
pub const HELLO: &str = "dvhost-example-hello";
/// The CRUD example plugin `examples/contacts`.
pub const CONTACTS: &str = "dvhost-example-contacts";
/// The lead-scoring example plugin `examples/lead-scoring`.
pub const LEAD_SCORING: &str = "dvhost-example-lead-scoring";
/// The generated table actions `plugins/tables` (`<table>.create`,
/// `.retrieve`, `.update`, `.delete`, `.list` for every granted table).
pub const TABLES: &str = "dvhost-tables";
/// The hostile fixture `host/testkit/guests/hostile`.
pub const HOSTILE: &str = "dvhost-guest-hostile";
/// The fixture importing an interface no host provides,
/// `host/testkit/guests/unknown-import`.
pub const UNKNOWN_IMPORT: &str = "dvhost-guest-unknown-import";
/// The fixture with one action per import, `host/testkit/guests/imports`.
pub const IMPORTS: &str = "dvhost-guest-imports";

/// Every Rust guest, by package name; all are built together.
pub const RUST_GUESTS: [&str; 7] = [
    HELLO,
    CONTACTS,
    LEAD_SCORING,
    TABLES,
    HOSTILE,
    UNKNOWN_IMPORT,
    IMPORTS,
];

/// The target guests are built for.
const TARGET: &str = "wasm32-wasip2";
/// The cargo profile guests are built with (root `Cargo.toml`).
const PROFILE: &str = "guest";

/// The workspace's root directory.
pub fn workspace_root() -> &'static Path {
    // This crate is `host/testkit` in the workspace.
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        manifest_dir
            .ancestors()
            .nth(2)
            .unwrap_or(manifest_dir)
            .to_path_buf()
    })
}

/// The target directory guests are built in, `target/guests`.
pub fn guest_target_dir() -> PathBuf {
    workspace_root().join("target").join("guests")
}

/// The component of Rust guest `name` (one of [`RUST_GUESTS`]), built on
/// the first call in this process.
///
/// # Panics
///
/// If `name` is not a Rust guest, or the build fails (the message names the
/// command and holds its output).
pub fn rust_guest(name: &str) -> PathBuf {
    assert!(
        RUST_GUESTS.contains(&name),
        "{name:?} is not a Rust guest; the guests are {RUST_GUESTS:?}"
    );
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = match BUILT.get_or_init(build_all) {
        Ok(dir) => dir,
        Err(message) => panic!("{message}"),
    };
    let path = dir.join(format!("{}.wasm", name.replace('-', "_")));
    assert!(
        path.is_file(),
        "the guest build succeeded but {} is missing",
        path.display()
    );
    path
}

/// Builds every Rust guest; returns the directory of their components.
fn build_all() -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_dir = guest_target_dir();
    let mut command = Command::new(&cargo);
    command
        .current_dir(workspace_root())
        .args(["build", "--profile", PROFILE, "--target", TARGET])
        .arg("--target-dir")
        .arg(&target_dir);
    for guest in RUST_GUESTS {
        command.args(["-p", guest]);
    }
    let shown = format!("{command:?}");
    let output = command
        .output()
        .map_err(|error| format!("could not run {shown}: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "building the guests failed ({}): {shown}\n\
             (is the target installed? `rustup target add {TARGET}`)\n--- stderr ---\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(target_dir.join(TARGET).join(PROFILE))
}
