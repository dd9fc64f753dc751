//! Builds the example plugins written in Python and JavaScript into
//! components, with the toolchains pinned in `tests/requirements.txt`
//! (componentize-py) and `tests/package.json` (jco).
//!
//! They prove that `wit/plugin.wit` is the standard component model: the
//! same contract the Rust guests use, built by tools that know nothing of
//! dvhost. `tests/run.sh` installs both toolchains; a build that fails
//! panics with the command line and its stderr, since a test cannot go on
//! without its guest.
//!
//! Each guest is built at most once per process, and not at all when the
//! component in `target/guests/polyglot/` was built from the same inputs
//! (source, WIT files, pinned tool versions and flags): the two builds take
//! tens of seconds, and several test binaries need them.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Instant;

use sha2::{Digest, Sha256};

/// The Python example (`examples/python-hello`) as a component, built with
/// componentize-py from the virtual environment of `DVHOST_TEST_PYTHON`
/// (else `tests/.venv`).
///
/// # Panics
///
/// When the toolchain is missing or the build fails; the message holds the
/// command line and its output.
pub fn python_guest() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| build(&python_recipe())).clone()
}

/// The JavaScript example (`examples/js-hello`) as a component, built with
/// `jco componentize` from `tests/node_modules`, run by the node of
/// `DVHOST_TEST_NODE` (else the one on `PATH`).
///
/// # Panics
///
/// When the toolchain is missing or the build fails; the message holds the
/// command line and its output.
pub fn js_guest() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| build(&js_recipe())).clone()
}

/// How one guest is built.
struct Recipe {
    /// File name of the component, without `.wasm`.
    name: &'static str,
    /// The program that builds it.
    program: PathBuf,
    /// The source file, copied into a staging directory before the build so
    /// the tool's by-products (such as `__pycache__`) stay out of `examples/`.
    source: PathBuf,
    /// The file pinning the tool's version, part of the fingerprint.
    pins: PathBuf,
    /// The program's arguments, given the staged source (`-o` follows).
    args: fn(staged_source: &Path) -> Vec<OsString>,
}

fn os_strings<const N: usize>(args: [&str; N]) -> impl Iterator<Item = OsString> {
    args.into_iter().map(OsString::from)
}

fn python_recipe() -> Recipe {
    let root = crate::workspace_root();
    let python = std::env::var_os("DVHOST_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("tests/.venv/bin/python"));
    // The console script sits beside the venv's interpreter. The interpreter
    // path is not canonicalized: in a venv it is a symlink to the system
    // python, whose directory has no componentize-py.
    let program = python
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join("componentize-py");
    Recipe {
        name: "python-hello",
        program,
        source: root.join("examples/python-hello/app.py"),
        pins: root.join("tests/requirements.txt"),
        args: |staged| {
            let dir = staged.parent().unwrap_or_else(|| Path::new("."));
            ["-d".into(), crate::workspace_root().join("wit").into()]
                .into_iter()
                .chain(os_strings(["-w", "plugin", "componentize", "app", "-p"]))
                .chain([dir.into()])
                .collect()
        },
    }
}

fn js_recipe() -> Recipe {
    let root = crate::workspace_root();
    let node = std::env::var_os("DVHOST_TEST_NODE").unwrap_or_else(|| "node".into());
    Recipe {
        name: "js-hello",
        program: PathBuf::from(node),
        source: root.join("examples/js-hello/app.js"),
        pins: root.join("tests/package-lock.json"),
        args: |staged| {
            // `.bin/jco` is a symlink to jco's script; running the script
            // with the chosen node (not its `#!/usr/bin/env node` line)
            // honours DVHOST_TEST_NODE.
            let bin = crate::workspace_root().join("tests/node_modules/.bin/jco");
            let script = fs::canonicalize(&bin).unwrap_or(bin);
            [script.into(), "componentize".into(), staged.into()]
                .into_iter()
                .chain(["-w".into(), crate::workspace_root().join("wit").into()])
                // `http` and `fetch-event` would import wasi:http, which a
                // plugin has no use for: the host makes every request.
                .chain(os_strings(["-n", "plugin", "-d", "http", "fetch-event"]))
                .collect()
        },
    }
}

/// Builds `recipe` unless its component is up to date; returns its path.
fn build(recipe: &Recipe) -> PathBuf {
    let dir = crate::guest_target_dir().join("polyglot");
    fs::create_dir_all(&dir)
        .unwrap_or_else(|error| panic!("cannot create {}: {error}", dir.display()));
    let out = dir.join(format!("{}.wasm", recipe.name));
    let stamp = dir.join(format!("{}.inputs", recipe.name));
    let fingerprint = fingerprint(recipe);
    if out.is_file() && fs::read_to_string(&stamp).is_ok_and(|s| s == fingerprint) {
        return out;
    }

    // Per-process names: test binaries may build at the same time, and the
    // final rename is the only step another process can observe.
    let pid = std::process::id();
    let stage = dir.join(format!("{}-src.{pid}", recipe.name));
    let _ = fs::remove_dir_all(&stage);
    fs::create_dir_all(&stage).expect("staging directory");
    let file_name = recipe.source.file_name().expect("a source file name");
    let staged = stage.join(file_name);
    fs::copy(&recipe.source, &staged)
        .unwrap_or_else(|error| panic!("cannot copy {}: {error}", recipe.source.display()));
    let partial = dir.join(format!("{}.wasm.{pid}", recipe.name));

    let mut command = Command::new(&recipe.program);
    command
        .args((recipe.args)(&staged))
        .arg("-o")
        .arg(&partial)
        .current_dir(&stage);
    isolate_environment(&mut command);
    let started = Instant::now();
    let output = command.output();
    let _ = fs::remove_dir_all(&stage);
    let output = output.unwrap_or_else(|error| {
        panic!(
            "cannot run {command:?}: {error}\nrun tests/run.sh, which installs the \
             pinned toolchains into tests/.venv and tests/node_modules"
        )
    });
    check(&command, &output, &partial);
    fs::rename(&partial, &out)
        .unwrap_or_else(|error| panic!("cannot move the component to {}: {error}", out.display()));
    fs::write(&stamp, &fingerprint).expect("fingerprint file");
    eprintln!(
        "polyglot: built {} in {:.1} s",
        out.display(),
        started.elapsed().as_secs_f64()
    );
    out
}

/// Runs the tool with only what it needs from the environment, so nothing
/// of the test process (such as a credential in a variable) can end up in
/// the snapshot of the guest's memory that wizer and componentize-py take.
fn isolate_environment(command: &mut Command) {
    command.env_clear();
    for name in ["PATH", "HOME", "TMPDIR", "LANG"] {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    command.env("PYTHONDONTWRITEBYTECODE", "1");
}

fn check(command: &Command, output: &Output, partial: &Path) {
    if output.status.success() && partial.is_file() {
        return;
    }
    let _ = fs::remove_file(partial);
    panic!(
        "building a polyglot guest failed ({})\ncommand: {command:?}\n\
         stderr:\n{}\nstdout:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout),
    );
}

/// A digest of everything the component depends on: the source, every WIT
/// file, the pinned tool versions and the command's arguments.
fn fingerprint(recipe: &Recipe) -> String {
    let mut hash = Sha256::new();
    let mut add = |label: &str, bytes: &[u8]| {
        hash.update((label.len() as u64).to_le_bytes());
        hash.update(label.as_bytes());
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    };
    let read = |path: &Path| {
        fs::read(path).unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
    };
    add("source", &read(&recipe.source));
    add("pins", &read(&recipe.pins));
    add("program", recipe.program.as_os_str().as_encoded_bytes());
    // The staged path differs per process; a fixed stand-in keeps the
    // digest stable.
    for arg in (recipe.args)(Path::new("staged/source")) {
        add("arg", arg.as_encoded_bytes());
    }
    let mut files = Vec::new();
    files_under(&crate::workspace_root().join("wit"), &mut files);
    files.sort();
    for file in files {
        add(&file.to_string_lossy(), &read(&file));
    }
    format!("{:x}", hash.finalize())
}

/// Every file below `dir` (WIT packages may have a `deps/` tree).
fn files_under(dir: &Path, files: &mut Vec<PathBuf>) {
    let entries =
        fs::read_dir(dir).unwrap_or_else(|error| panic!("cannot list {}: {error}", dir.display()));
    for path in entries.filter_map(|entry| entry.ok().map(|entry| entry.path())) {
        if path.is_dir() {
            files_under(&path, files);
        } else {
            files.push(path);
        }
    }
}
