//! Tidy checks: the invariants of docs/ARCHITECTURE.md that are absences, checked where developers
//! run tests (CI runs this file first, as its "dependency boundaries" step).
//!
//! - Dependency boundaries, read from `cargo tree` (normal dependencies only).
//! - Names that must not appear in a crate's sources.
//! - Source files over the size limit, unless listed with a reason.
//! - No module cycle inside a crate (see `tidy/modules.rs` for how the graph is read).
//! - Every source file says what it is in a `//!` line.
//! - Every contract check is in its suite's list (`tidy/contracts.rs`).
//! - The README's summary of the protocol names every client and server event.

#![allow(clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "tidy/contracts.rs"]
mod contracts;
#[path = "tidy/events.rs"]
mod events;
#[path = "tidy/modules.rs"]
mod modules;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// The names of every crate `krate` depends on through normal dependencies (transitively).
fn normal_dependencies(krate: &str) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(workspace_root())
        .args(["tree", "-q", "--locked", "--offline", "-p", krate, "-e", "normal", "--prefix", "none"])
        .output()
        .expect("run cargo tree");
    assert!(out.status.success(), "cargo tree -p {krate} failed: {}", String::from_utf8_lossy(&out.stderr));
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != krate)
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// (crate, what it must not depend on, why)
const BOUNDARIES: &[(&str, &[&str], &str)] = &[
    (
        "labchat-domain",
        &[
            "tokio",
            "mongodb",
            "bson",
            "tungstenite",
            "tokio-tungstenite",
            "serde_json",
            "hyper",
            "async-trait",
            "redis",
        ],
        "the domain is synchronous and I/O-free",
    ),
    (
        "labchat-core",
        &[
            "mongodb",
            "bson",
            "tungstenite",
            "tokio-tungstenite",
            "serde_json",
            "hyper",
            "redis",
            "labchat-memory",
            "labchat-store-mongo",
            "labchat-transport-ws",
            "labchat-broadcast-redis",
        ],
        "the core knows no driver, no wire format and no adapter",
    ),
    (
        "labchat-memory",
        &[
            "mongodb",
            "bson",
            "tungstenite",
            "tokio-tungstenite",
            "serde_json",
            "hyper",
            "redis",
            "labchat-transport-ws",
        ],
        "the in-memory adapters know no driver, no wire format and no other adapter",
    ),
    (
        "labchat-transport-ws",
        &["mongodb", "bson", "redis", "labchat-memory", "labchat-store-mongo", "labchat-broadcast-redis"],
        "the transport knows no database, no backplane and names no store",
    ),
    (
        "labchat-store-mongo",
        &["tungstenite", "tokio-tungstenite", "hyper", "redis", "labchat-memory", "labchat-transport-ws"],
        "the MongoDB store knows no wire format and no other adapter",
    ),
    (
        "labchat-broadcast-redis",
        &[
            "mongodb",
            "bson",
            "tungstenite",
            "tokio-tungstenite",
            "hyper",
            "labchat-memory",
            "labchat-store-mongo",
            "labchat-transport-ws",
        ],
        "the Redis backplane knows no database, no websocket and no other adapter",
    ),
];

#[test]
fn dependency_boundaries_hold() {
    let mut failures = Vec::new();
    for (krate, forbidden, why) in BOUNDARIES {
        let deps = normal_dependencies(krate);
        let found: Vec<&str> = forbidden.iter().copied().filter(|f| deps.iter().any(|d| d == f)).collect();
        if !found.is_empty() {
            failures.push(format!("{krate} depends on {found:?}: {why}"));
        }
    }
    assert!(failures.is_empty(), "dependency boundaries broken:\n{}", failures.join("\n"));
}

fn rust_sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read a source directory") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// (crate directory, a name its non-test sources must not contain, why)
const ABSENT_NAMES: &[(&str, &str, &str)] = &[
    ("crates/labchat-transport-ws/src", "SystemClock", "the transport uses the clock it is given"),
    ("crates/labchat-transport-ws/src", "MemoryStore", "only crates/labchat names concrete adapters"),
    ("crates/labchat-transport-ws/src", "MongoStore", "only crates/labchat names concrete adapters"),
    ("crates/labchat-transport-ws/src", "LocalBroadcaster", "only crates/labchat names concrete adapters"),
    ("crates/labchat-core/src", "MemoryStore", "only crates/labchat names concrete adapters"),
    ("crates/labchat-core/src", "MongoStore", "only crates/labchat names concrete adapters"),
    ("crates/labchat-core/src", "LocalBroadcaster", "only crates/labchat names concrete adapters"),
    ("crates/labchat-memory/src", "labchat_transport_ws", "adapters do not call into each other"),
    ("crates/labchat-store-mongo/src", "labchat_transport_ws", "adapters do not call into each other"),
];

/// The part of a source file before its `#[cfg(test)]` module, if any.
fn non_test_part(text: &str) -> &str {
    text.find("#[cfg(test)]").map_or(text, |at| &text[..at])
}

#[test]
fn absent_names_stay_absent() {
    let root = workspace_root();
    let mut failures = Vec::new();
    for (dir, name, why) in ABSENT_NAMES {
        for file in rust_sources(&root.join(dir)) {
            if file.file_name().is_some_and(|f| f == "tests.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&file).expect("read a source file");
            if non_test_part(&text).contains(name) {
                failures.push(format!("{} names {name}: {why}", file.display()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Source files allowed past [`MAX_LINES`], each with its reason (none today).
const LONG_FILES: &[(&str, &str)] = &[];

const MAX_LINES: usize = 400;

#[test]
fn source_files_stay_small_unless_listed_with_a_reason() {
    let root = workspace_root();
    let mut failures = Vec::new();
    for file in rust_sources(&root.join("crates")) {
        let rel = file.strip_prefix(&root).expect("under the root").to_string_lossy().replace('\\', "/");
        // Tests and examples are exempt: a test file is a list of cases.
        if rel.contains("/tests/") || rel.ends_with("/tests.rs") || rel.contains("/examples/") {
            continue;
        }
        let lines = std::fs::read_to_string(&file).expect("read a source file").lines().count();
        let listed = LONG_FILES.iter().any(|(path, _)| *path == rel);
        if lines > MAX_LINES && !listed {
            failures
                .push(format!("{rel}: {lines} lines (split it by concern, or list it in LONG_FILES with a reason)"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The source directory of every crate whose modules are checked for cycles.
fn crate_sources(root: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))
        .expect("read crates/")
        .map(|e| e.expect("a directory entry").path().join("src"))
        .filter(|src| src.is_dir())
        .collect();
    dirs.push(root.join("tests/src"));
    dirs.sort();
    dirs
}

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    let root = workspace_root();
    let mut failures = Vec::new();
    for src in crate_sources(&root) {
        let sources = rust_sources(&src);
        for cycle in modules::cycles(&src, &sources, non_test_part) {
            let rel = src.strip_prefix(&root).expect("under the root").display().to_string();
            failures.push(format!("a module cycle in {rel}:\n    {}", cycle.join("\n    ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n(move what both sides need into a module of its own, below both)",
        failures.join("\n")
    );
}

#[test]
fn every_source_file_says_what_it_is() {
    let root = workspace_root();
    let mut dirs = vec![root.join("tests/src"), root.join("tests/tests")];
    for krate in std::fs::read_dir(root.join("crates")).expect("read crates/") {
        let krate = krate.expect("a directory entry").path();
        dirs.extend(["src", "tests", "examples", "benches"].map(|d| krate.join(d)).into_iter().filter(|d| d.is_dir()));
    }
    let mut failures = Vec::new();
    for dir in dirs {
        for file in rust_sources(&dir) {
            let text = std::fs::read_to_string(&file).expect("read a source file");
            if !text.lines().any(|l| l.starts_with("//!")) {
                let rel = file.strip_prefix(&root).expect("under the root").display().to_string();
                failures.push(format!("{rel}: no `//!` line saying what the file is for"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn no_match_on_room_events_has_a_catch_all_arm_outside_the_domain() {
    let root = workspace_root();
    let mut failures = Vec::new();
    for dir in ["crates", "tests"] {
        for file in rust_sources(&root.join(dir)) {
            let rel = file.strip_prefix(&root).expect("under the root").to_string_lossy().replace('\\', "/");
            if rel.starts_with("crates/labchat-domain/") || rel.contains("/node_modules/") {
                continue;
            }
            let text = std::fs::read_to_string(&file).expect("read a source file");
            for line in events::catch_all_arms(&text) {
                failures.push(format!("{rel}:{line}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "catch-all arms on RoomEvent (decide in the domain, RoomEvent::placement/inbox_effect/..., or list every \
         variant):\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_contract_check_is_in_its_suite_s_list() {
    let root = workspace_root();
    let sources: Vec<(String, String)> = rust_sources(&root.join("tests/src"))
        .into_iter()
        .map(|f| {
            let rel = f.strip_prefix(&root).expect("under the root").to_string_lossy().replace('\\', "/");
            (rel, std::fs::read_to_string(&f).expect("read a source file"))
        })
        .collect();
    let mut failures = Vec::new();
    for (list, fixture) in [
        ("for_each_contract_check", "StoreFixture"),
        ("for_each_broadcast_check", "BroadcastFixture"),
        ("for_each_presence_check", "PresenceFixture"),
    ] {
        match contracts::unlisted(&sources, list, fixture) {
            Ok(missing) => failures.extend(missing),
            Err(e) => failures.push(e),
        }
    }
    assert!(failures.is_empty(), "contract checks that never run:\n{}", failures.join("\n"));
}

/// The README's summary of the protocol names every event the server reads and sends (the docs
/// under docs/ are held to the same lists by the e2e `asyncapi` tests).
#[test]
fn the_readme_names_every_client_and_server_event() {
    use labchat_transport_ws::protocol::{CLIENT_EVENTS, ServerEvent};
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).expect("read README.md");
    let events = CLIENT_EVENTS.into_iter().chain(ServerEvent::ALL.iter().map(|e| e.as_str()));
    // The whole name: `message` alone, or `message {…}` with its fields (not `messageReads`).
    let named = |name: &str| [format!("`{name}`"), format!("`{name} {{")].iter().any(|n| readme.contains(n.as_str()));
    let missing: Vec<&str> = events.filter(|name| !named(name)).collect();
    assert!(missing.is_empty(), "README.md does not name these events: {missing:?}");
}
