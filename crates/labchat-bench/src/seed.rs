//! Room ids: a deterministic list of request ids, written as a seed file for
//! `labchat serve --seed-requests FILE` and read back by the workloads.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::BenchError;

/// The first 8 hex digits of every generated request id (the rest is the room's index).
pub const ID_PREFIX: &str = "be4c0000";

/// The default creator of generated requests (any user works: the bench connects as LAB, which
/// may access every request).
pub const DEFAULT_CREATOR: &str = "bench-teacher";

/// One entry of a seed file, as `labchat serve --seed-requests` reads it.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeedRequest {
    /// 24 hex digits.
    pub id: String,
    /// The request's creator.
    pub created_by: String,
}

/// The request id of room `index`: [`ID_PREFIX`] then the index in 16 hex digits.
pub fn room_id(index: usize) -> String {
    format!("{ID_PREFIX}{index:016x}")
}

/// The first `rooms` generated requests.
pub fn generate(rooms: usize, created_by: &str) -> Vec<SeedRequest> {
    (0..rooms).map(|i| SeedRequest { id: room_id(i), created_by: created_by.to_owned() }).collect()
}

/// The seed file's text for these requests.
pub fn to_json(requests: &[SeedRequest]) -> String {
    // A Vec of plain string structs always serializes.
    serde_json::to_string_pretty(requests).unwrap_or_else(|_| "[]".to_owned())
}

/// Writes a seed file of `rooms` generated requests.
pub fn write(path: &Path, rooms: usize, created_by: &str) -> Result<(), BenchError> {
    std::fs::write(path, to_json(&generate(rooms, created_by)))
        .map_err(|source| BenchError::Io { context: format!("write {}", path.display()), source })
}

/// The request ids of a seed file, in file order.
pub fn read_ids(path: &Path) -> Result<Vec<String>, BenchError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| BenchError::Io { context: format!("read {}", path.display()), source })?;
    let requests: Vec<SeedRequest> =
        serde_json::from_str(&text).map_err(|e| BenchError::Options(format!("seed file {}: {e}", path.display())))?;
    Ok(requests.into_iter().map(|r| r.id).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_24_hex_distinct_and_round_trip() {
        let reqs = generate(3, "t1");
        assert!(reqs.iter().all(|r| r.id.len() == 24 && r.id.chars().all(|c| c.is_ascii_hexdigit())));
        assert_ne!(reqs[0].id, reqs[1].id);
        let back: Vec<SeedRequest> = serde_json::from_str(&to_json(&reqs)).unwrap();
        assert_eq!(back, reqs);
        assert!(to_json(&reqs).contains("\"createdBy\""));
    }
}
