//! The module graph of one crate, read from its sources: a file is a node, and a file that names
//! a path starting with `crate::` or `super::` depends on the module file that path reaches (the
//! longest prefix of it that is a module with a file of its own). Declaring a child module
//! (`mod x;`) and re-exporting (`pub use`, `pub(crate) use`: the crate's or the module's face,
//! not a use) are not edges, nor are comments or a file's test module at its end. A cycle is a
//! strongly connected component of more than one file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module's path from the crate root (`[]` for `lib.rs`).
type ModPath = Vec<String>;

/// The module path of `file` in the crate whose root directory is `src`, or `None` for a file
/// that is not part of the library's module tree (a binary's `main.rs`, `src/bin/`).
fn module_path(src: &Path, file: &Path) -> Option<ModPath> {
    let rel = file.strip_prefix(src).ok()?;
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop()?;
    if parts.first().is_some_and(|p| p == "bin") || (parts.is_empty() && last == "main.rs") {
        return None;
    }
    match last.as_str() {
        "lib.rs" if parts.is_empty() => {}
        "mod.rs" => {}
        name => parts.push(name.strip_suffix(".rs")?.to_owned()),
    }
    Some(parts)
}

/// `text` without its comments (line and block comments, doc comments included) and string
/// literals (so that neither a link in a doc comment nor a path in a message is read as a use).
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0usize;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if let Some(end) = raw_string_end(b, i) {
            i = end;
            out.push_str("\"\"");
        } else if b[i] == b'"' && !(i > 0 && b[i - 1] == b'\'') {
            // A string literal (not the `'"'` char literal): skipped up to its closing quote.
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else {
            let ch = text[i..].chars().next().expect("a char at a char boundary");
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// When a raw string literal (`r"…"`, `r#"…"#`, `br#"…"#`) starts at `b[i]`, where it ends.
fn raw_string_end(b: &[u8], i: usize) -> Option<usize> {
    if b[i] != b'r' || (i > 0 && is_ident_byte(b[i - 1]) && b[i - 1] != b'b') {
        return None;
    }
    let hashes = b[i + 1..].iter().take_while(|c| **c == b'#').count();
    let open = i + 1 + hashes;
    if b.get(open) != Some(&b'"') {
        return None;
    }
    let close: Vec<u8> = std::iter::once(b'"').chain(std::iter::repeat_n(b'#', hashes)).collect();
    let body = open + 1;
    let len = b[body..].windows(close.len()).position(|w| w == close.as_slice())?;
    Some(body + len + close.len())
}

fn is_ident_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Reads the path tree at `text[at..]` (`a::b`, `a::{b, c::d}`, `a::*`), appending each full
/// path (segments before `::{...}` repeated in each branch) to `out`; returns where it ends.
fn read_tree(text: &[u8], mut at: usize, prefix: &[String], out: &mut Vec<Vec<String>>) -> usize {
    let mut path = prefix.to_vec();
    loop {
        while at < text.len() && text[at].is_ascii_whitespace() {
            at += 1;
        }
        if at < text.len() && text[at] == b'{' {
            at += 1;
            loop {
                at = read_tree(text, at, &path, out);
                while at < text.len() && (text[at].is_ascii_whitespace() || text[at] == b',') {
                    at += 1;
                }
                if at >= text.len() || text[at] == b'}' {
                    return at + 1;
                }
            }
        }
        let start = at;
        while at < text.len() && (is_ident_byte(text[at]) || text[at] == b'*') {
            at += 1;
        }
        if at > start {
            path.push(String::from_utf8_lossy(&text[start..at]).into_owned());
        }
        let mut next = at;
        while next < text.len() && text[next].is_ascii_whitespace() {
            next += 1;
        }
        if text[next..].starts_with(b"::") {
            at = next + 2;
        } else {
            out.push(path);
            return at;
        }
    }
}

/// Whether the `use` whose keyword ends just before `at` re-exports (`pub use`, `pub(..) use`).
fn is_reexport(code: &[u8], use_at: usize) -> bool {
    let before = String::from_utf8_lossy(&code[..use_at]);
    let before = before.trim_end();
    before.ends_with("pub")
        || (before.ends_with(')') && before.rfind("pub(").is_some_and(|p| !before[p..].contains(';')))
}

/// Every `crate::`/`super::` path the code names, outside re-exports: in `use` trees and inline.
fn named_paths(code: &str) -> Vec<Vec<String>> {
    let b = code.as_bytes();
    let mut paths = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let starts_word = i == 0 || !(is_ident_byte(b[i - 1]) || b[i - 1] == b'$' || b[i - 1] == b':');
        if starts_word && b[i..].starts_with(b"use") && b.get(i + 3).is_some_and(|c| c.is_ascii_whitespace()) {
            let reexport = is_reexport(b, i);
            let mut found = Vec::new();
            let end = read_tree(b, i + 3, &[], &mut found);
            if !reexport {
                paths.extend(found.into_iter().filter(|p| p.first().is_some_and(|s| s == "crate" || s == "super")));
            }
            i = end.max(i + 3);
            continue;
        }
        if starts_word && (b[i..].starts_with(b"crate::") || b[i..].starts_with(b"super::")) {
            let mut found = Vec::new();
            i = read_tree(b, i, &[], &mut found).max(i + 1);
            paths.extend(found);
            continue;
        }
        i += 1;
    }
    paths
}

/// The module file a path reaches from the module `from`: its longest prefix that is a module.
fn resolve<'a>(from: &ModPath, path: &[String], files: &'a BTreeMap<ModPath, PathBuf>) -> Option<&'a ModPath> {
    let mut segs = path.iter().peekable();
    let mut base: ModPath = match segs.next().map(String::as_str) {
        Some("crate") => Vec::new(),
        Some("super") => from[..from.len().checked_sub(1)?].to_vec(),
        _ => return None,
    };
    while segs.peek().is_some_and(|s| *s == "super") {
        segs.next();
        base.pop();
    }
    for seg in segs {
        base.push(seg.clone());
        if !files.contains_key(&base) {
            base.pop();
            break;
        }
    }
    files.get_key_value(&base).map(|(k, _)| k)
}

/// The cycles among the files of the crate rooted at `src`: each as its files and the edges
/// between them (`a -> b` when `a` names a path into `b`).
pub fn cycles(src: &Path, sources: &[PathBuf], non_test_part: fn(&str) -> &str) -> Vec<Vec<String>> {
    let files: BTreeMap<ModPath, PathBuf> =
        sources.iter().filter_map(|f| module_path(src, f).map(|m| (m, f.clone()))).collect();
    let mut edges: BTreeMap<&ModPath, BTreeSet<&ModPath>> = BTreeMap::new();
    for (module, file) in &files {
        let text = std::fs::read_to_string(file).expect("read a source file");
        let code = code_only(non_test_part(&text));
        let targets = edges.entry(module).or_default();
        for path in named_paths(&code) {
            if let Some(to) = resolve(module, &path, &files)
                && to != module
            {
                targets.insert(to);
            }
        }
    }
    let name = |m: &ModPath| files[m].strip_prefix(src).unwrap_or(&files[m]).display().to_string();
    strongly_connected(&edges)
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|component| {
            let mut lines = Vec::new();
            for from in &component {
                for to in edges.get(from).into_iter().flatten().filter(|t| component.contains(t)) {
                    lines.push(format!("{} -> {}", name(from), name(to)));
                }
            }
            lines
        })
        .collect()
}

/// The strongly connected components of a graph (Tarjan's algorithm).
fn strongly_connected<'a>(edges: &BTreeMap<&'a ModPath, BTreeSet<&'a ModPath>>) -> Vec<Vec<&'a ModPath>> {
    struct State<'a> {
        index: BTreeMap<&'a ModPath, usize>,
        low: BTreeMap<&'a ModPath, usize>,
        stack: Vec<&'a ModPath>,
        on_stack: BTreeSet<&'a ModPath>,
        out: Vec<Vec<&'a ModPath>>,
    }
    fn visit<'a>(v: &'a ModPath, edges: &BTreeMap<&'a ModPath, BTreeSet<&'a ModPath>>, s: &mut State<'a>) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for &w in edges.get(v).into_iter().flatten() {
            if !s.index.contains_key(w) {
                visit(w, edges, s);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w);
                if w == v {
                    break;
                }
            }
            s.out.push(component);
        }
    }
    let mut s = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for &v in edges.keys() {
        if !s.index.contains_key(v) {
            visit(v, edges, &mut s);
        }
    }
    s.out
}

#[cfg(test)]
mod reading {
    use super::*;

    #[test]
    fn use_trees_expand_and_reexports_do_not_count() {
        let code = code_only(
            "use crate::a::{b::C, d};\npub use crate::e::F;\npub(crate) use super::g::H;\nuse super::{self, i::*};\n\
             // use crate::j;\nfn f() { crate::k::l(); let s = \"crate::m\"; let r = r#\"\"crate::n\"#; }\n",
        );
        let paths: Vec<String> = named_paths(&code).iter().map(|p| p.join("::")).collect();
        assert_eq!(paths, ["crate::a::b::C", "crate::a::d", "super::self", "super::i::*", "crate::k::l"]);
    }

    #[test]
    fn a_path_reaches_its_longest_module_prefix() {
        let m = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect::<ModPath>();
        let files: BTreeMap<ModPath, PathBuf> =
            [m(&[]), m(&["a"]), m(&["a", "b"]), m(&["c"])].into_iter().map(|k| (k, PathBuf::new())).collect();
        let path = |s: &str| s.split("::").map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(resolve(&m(&["c"]), &path("crate::a::b::X"), &files), Some(&m(&["a", "b"])));
        assert_eq!(resolve(&m(&["a", "b"]), &path("super::X"), &files), Some(&m(&["a"])));
        assert_eq!(resolve(&m(&["a", "b"]), &path("super::super::c::Y"), &files), Some(&m(&["c"])));
        assert_eq!(resolve(&m(&["c"]), &path("crate::Z"), &files), Some(&m(&[])));
    }
}
