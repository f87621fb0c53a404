//! Lab requests and who may act on their rooms ([`Request::authorize`]).

use crate::{RequestId, Role, User, UserId};

/// A lab request (an order placed by a teacher). Its chat room has the same id.
///
/// A request normally names its creator. One whose stored creator is missing or malformed has
/// none ([`Request::without_creator`]): no teacher owns it, and only lab staff may act on it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Request {
    id: RequestId,
    created_by: Option<UserId>,
}

/// The user may not act on the request's room.
///
/// Callers answer a missing request the same way, so that nobody learns which requests exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("you may not access this request")]
pub struct AccessDenied;

impl Request {
    /// A request with this id, created by `created_by`.
    pub const fn new(id: RequestId, created_by: UserId) -> Self {
        Self { id, created_by: Some(created_by) }
    }

    /// A request with this id and no valid creator (its stored creator is missing or
    /// malformed): no teacher owns it, lab staff may still act on it.
    pub const fn without_creator(id: RequestId) -> Self {
        Self { id, created_by: None }
    }

    /// The request's id.
    pub const fn id(&self) -> RequestId {
        self.id
    }

    /// The user who created the request; `None` for a request without a valid creator.
    pub const fn created_by(&self) -> Option<&UserId> {
        self.created_by.as_ref()
    }

    /// The authorization rule: a user may act on this request's room (join it, read its history,
    /// post to it, mark its messages) when they have role [`Role::Lab`], or have role
    /// [`Role::Teacher`] and created this request. No teacher may act on a request without a
    /// valid creator.
    pub fn authorize(&self, user: &User) -> Result<(), AccessDenied> {
        match (user.role(), &self.created_by) {
            (Role::Lab, _) => Ok(()),
            (Role::Teacher, Some(creator)) if user.id() == creator => Ok(()),
            (Role::Teacher, _) => Err(AccessDenied),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uid(s: &str) -> UserId {
        UserId::parse(s).unwrap()
    }

    #[test]
    fn authorization_rule_table() {
        let rid = RequestId::parse("6751b6df1ad14eaa13a03313").unwrap();
        let request = Request::new(rid, uid("t1"));
        let cases = [
            ("creator teacher", "t1", Role::Teacher, true),
            ("other teacher", "t2", Role::Teacher, false),
            ("teacher id differs only by case", "T1", Role::Teacher, false),
            ("teacher id with padding", " t1", Role::Teacher, false),
            ("lab staff", "lab", Role::Lab, true),
            ("lab staff who is also the creator id", "t1", Role::Lab, true),
        ];
        for (name, id, role, allowed) in cases {
            let user = User::new(uid(id), role);
            assert_eq!(request.authorize(&user).is_ok(), allowed, "{name}");
        }
    }

    #[test]
    fn a_request_without_a_creator_is_for_lab_staff_only() {
        let rid = RequestId::parse("6751b6df1ad14eaa13a03313").unwrap();
        let request = Request::without_creator(rid);
        assert_eq!(request.created_by(), None);
        assert_eq!(request.authorize(&User::new(uid("lab"), Role::Lab)), Ok(()));
        for teacher in ["t1", "", "null", "0"] {
            let Ok(id) = UserId::parse(teacher) else { continue };
            assert_eq!(request.authorize(&User::new(id, Role::Teacher)), Err(AccessDenied), "{teacher:?}");
        }
    }
}
