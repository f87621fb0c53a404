//! Finds contract checks that their suite's list leaves out: every `pub async fn` of the tests
//! crate that takes a contract's fixture must be named in that contract's `for_each_*_check!`
//! macro, or it would compile and never run.

/// The checks defined in `sources` (pairs of file name and text) whose signature takes
/// `fixture`, and that the body of `macro_rules! <list>` (in one of the sources) does not name.
pub fn unlisted(sources: &[(String, String)], list: &str, fixture: &str) -> Result<Vec<String>, String> {
    let listed = sources
        .iter()
        .find_map(|(_, text)| macro_body(text, list))
        .ok_or_else(|| format!("no `macro_rules! {list}` in the tests crate"))?;
    let mut missing = Vec::new();
    for (file, text) in sources {
        for name in checks_taking(text, fixture) {
            if !names(listed).any(|n| n == name) {
                missing.push(format!("{file}: {name} is not in {list}!"));
            }
        }
    }
    Ok(missing)
}

/// The names of the `pub async fn`s of `text` whose signature (up to its body) mentions `fixture`.
fn checks_taking<'a>(text: &'a str, fixture: &'a str) -> impl Iterator<Item = &'a str> {
    text.match_indices("pub async fn ").filter_map(move |(i, m)| {
        let rest = &text[i + m.len()..];
        let name_end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_'))?;
        let signature = &rest[..rest.find('{')?];
        signature.contains(fixture).then_some(&rest[..name_end])
    })
}

/// The text of `macro_rules! <list> { ... }`.
fn macro_body<'a>(text: &'a str, list: &str) -> Option<&'a str> {
    let start = text.find(&format!("macro_rules! {list} "))?;
    let body = &text[start..];
    let mut depth = 0usize;
    for (i, c) in body.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 1 => return Some(&body[..=i]),
            '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

fn names(body: &str) -> impl Iterator<Item = &str> {
    body.split(|c: char| !(c.is_alphanumeric() || c == '_')).filter(|w| !w.is_empty())
}
