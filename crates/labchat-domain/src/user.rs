//! Users and their roles ([`Role`]), as the token tells them.

use std::fmt;

use crate::UserId;

/// The role of a user, taken from the token. Only these two roles may use labchat at all.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Role {
    /// A teacher: may act only on the rooms of the requests they created.
    Teacher,
    /// Lab staff: may act on the room of every request.
    Lab,
}

/// The role string is not one labchat accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("role {0:?} may not use labchat (expected TEACHER or LAB)")]
pub struct RoleError(pub String);

impl Role {
    /// Parses the exact strings `TEACHER` and `LAB` (case-sensitive).
    pub fn parse(s: &str) -> Result<Self, RoleError> {
        match s {
            "TEACHER" => Ok(Self::Teacher),
            "LAB" => Ok(Self::Lab),
            other => Err(RoleError(other.to_owned())),
        }
    }

    /// The role's canonical string: `TEACHER` or `LAB`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Teacher => "TEACHER",
            Self::Lab => "LAB",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An authenticated user: who they are and in which role they act.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct User {
    id: UserId,
    role: Role,
}

impl User {
    /// A user with this id and role.
    pub const fn new(id: UserId, role: Role) -> Self {
        Self { id, role }
    }

    /// The user's id.
    pub const fn id(&self) -> &UserId {
        &self.id
    }

    /// The user's role.
    pub const fn role(&self) -> Role {
        self.role
    }
}
