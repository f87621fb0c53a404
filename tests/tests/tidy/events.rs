//! Finds `match` expressions on `RoomEvent` with a catch-all arm (`_` or a bare binding): outside
//! the domain crate, a new event variant must fail to compile at every match, never fall silently
//! into a wildcard.

/// The 1-based lines of the catch-all arms of matches whose other arms name `RoomEvent::`.
pub fn catch_all_arms(text: &str) -> Vec<usize> {
    let code = blank_comments_and_strings(text);
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(i) = code[at..].find("match ").map(|i| at + i) {
        at = i + 6;
        if i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_') {
            continue;
        }
        let Some(open) = block_start(bytes, at) else { continue };
        let Some(close) = matching(bytes, open) else { continue };
        let arms = arms(&code[open + 1..close]);
        if arms.iter().any(|(pattern, _)| pattern.starts_with("RoomEvent::")) {
            for (pattern, offset) in &arms {
                let bare = pattern.split(" if ").next().unwrap_or("").trim();
                let binding = bare.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
                if !bare.is_empty() && binding {
                    found.push(code[..open + 1 + offset].lines().count());
                }
            }
        }
    }
    found
}

/// The `{` opening a match's arms: the first brace at depth 0 after the scrutinee.
fn block_start(bytes: &[u8], from: usize) -> Option<usize> {
    let mut depth = 0i32;
    for (i, &b) in bytes.iter().enumerate().skip(from) {
        match b {
            b'(' | b'[' => depth += 1,
            b')' | b']' => depth -= 1,
            b'{' if depth == 0 => return Some(i),
            b'{' => depth += 1,
            b'}' => depth -= 1,
            b';' if depth == 0 => return None,
            _ => {}
        }
    }
    None
}

/// The index of the bracket closing the one at `open`.
fn matching(bytes: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0i32;
    for (i, &b) in bytes.iter().enumerate().skip(open) {
        match b {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Each arm's pattern (trimmed) and the offset where it starts, in a match's body.
fn arms(body: &str) -> Vec<(String, usize)> {
    let bytes = body.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let mut depth = 0i32;
    while i < bytes.len() {
        match bytes[i] {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            b'=' if depth == 0 && bytes.get(i + 1) == Some(&b'>') => {
                let pattern = body[start..i].trim().trim_start_matches('|').trim().to_owned();
                let offset = start + (body[start..i].len() - body[start..i].trim_start().len());
                out.push((pattern, offset));
                // The arm's body: a block, or an expression up to a comma at depth 0.
                let mut j = i + 2;
                while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                    j += 1;
                }
                let end = if bytes.get(j) == Some(&b'{') {
                    matching(bytes, j).map_or(bytes.len(), |c| c + 1)
                } else {
                    let mut d = 0i32;
                    let mut k = j;
                    while k < bytes.len() {
                        match bytes[k] {
                            b'(' | b'[' | b'{' => d += 1,
                            b')' | b']' | b'}' => d -= 1,
                            b',' if d == 0 => break,
                            _ => {}
                        }
                        k += 1;
                    }
                    k
                };
                i = end;
                while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b',') {
                    i += 1;
                }
                start = i;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// The text with comments, string and char literals replaced by spaces (lines kept).
fn blank_comments_and_strings(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                out.push(if chars[i] == '\n' { '\n' } else { ' ' });
                i += 1;
            }
            out.push_str("  ");
            i += 2;
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                out.push(if chars.get(i) == Some(&'\n') { '\n' } else { ' ' });
                i += 1;
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            out.push_str("   ");
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

#[test]
fn finds_a_wildcard_and_a_binding_but_not_exhaustive_matches() {
    let wild = "fn f(e: &RoomEvent) {\n    match e {\n        RoomEvent::A => 1,\n        _ => 2,\n    }\n}\n";
    assert_eq!(catch_all_arms(wild), [4]);
    let binding = "match e { RoomEvent::A { x, .. } => { x }\n other if true => { 1 } }";
    assert_eq!(catch_all_arms(binding), [2]);
    let full = "match e { RoomEvent::A => \"_ =>\", RoomEvent::B(m) => m.seq, }";
    assert!(catch_all_arms(full).is_empty());
    let other_enum = "match k { Kind::A => 1, _ => 2 }";
    assert!(catch_all_arms(other_enum).is_empty());
}
