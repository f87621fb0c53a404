use crate::{RequestId, Role, User, UserId};

/// A lab request (an order placed by a teacher). Its chat room has the same id.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Request {
    id: RequestId,
    created_by: UserId,
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
        Self { id, created_by }
    }

    /// The request's id.
    pub const fn id(&self) -> RequestId {
        self.id
    }

    /// The user who created the request.
    pub const fn created_by(&self) -> &UserId {
        &self.created_by
    }

    /// The authorization rule: a user may act on this request's room (join it, read its history,
    /// post to it, mark its messages) when they have role [`Role::Lab`], or have role
    /// [`Role::Teacher`] and created this request.
    pub fn authorize(&self, user: &User) -> Result<(), AccessDenied> {
        match user.role() {
            Role::Lab => Ok(()),
            Role::Teacher if user.id() == &self.created_by => Ok(()),
            Role::Teacher => Err(AccessDenied),
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
}
