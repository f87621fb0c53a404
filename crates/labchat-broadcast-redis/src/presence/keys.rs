//! The names of the presence keys and the form of their entries (see the parent module).

use labchat_domain::{RequestId, Role, UserId};

use crate::topology::Topology;

/// A room's three keys: its entries, its index of users, their roles (on a cluster after its
/// partition's hash tag, so that they share one slot).
pub(super) fn room_keys(topology: &Topology, room: RequestId) -> [String; 3] {
    let (hex, tag) = (room.to_hex(), topology.key_tag(room));
    [
        format!("labchat:presence:{tag}{hex}"),
        format!("labchat:presence-users:{tag}{hex}"),
        format!("labchat:presence-roles:{tag}{hex}"),
    ]
}

pub(super) fn typing_key(room: RequestId, user: &UserId) -> String {
    format!("labchat:typing:{}:{}", room.to_hex(), user.as_str())
}

/// The start of every entry of `user`: `<len>:<user>|`.
pub(super) fn owner(user: &UserId) -> String {
    format!("{}:{}|", user.as_str().len(), user.as_str())
}

pub(super) fn entry(user: &UserId, role: Role, node: &str) -> String {
    format!("{}{}|{node}", owner(user), role.as_str())
}

/// Reads an entry back: its user and role.
pub(super) fn parse_entry(entry: &str) -> Option<(UserId, Role)> {
    let (len, rest) = entry.split_once(':')?;
    let len: usize = len.parse().ok()?;
    let user = rest.get(..len)?;
    let (role, _node) = rest.get(len..)?.strip_prefix('|')?.split_once('|')?;
    Some((UserId::parse(user).ok()?, Role::parse(role).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_name_their_user_whatever_the_user_id_holds() {
        for id in ["lab-1", "a|b", "12:x|LAB|n", "é:|"] {
            let user = UserId::parse(id).unwrap();
            let e = entry(&user, Role::Lab, "node|0");
            assert!(e.starts_with(&owner(&user)), "{e}");
            assert_eq!(parse_entry(&e), Some((user, Role::Lab)), "{e}");
        }
        // Another user's prefix never matches: the length comes first.
        let (a, ab) = (UserId::parse("a").unwrap(), UserId::parse("a|TEACHER").unwrap());
        assert!(!entry(&ab, Role::Lab, "n").starts_with(&owner(&a)));
        assert_eq!(parse_entry("x"), None);
        assert_eq!(parse_entry("9:ab|LAB|n"), None);
    }
}
