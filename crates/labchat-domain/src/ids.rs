//! Validated ids: object ids (requests, messages), user ids and client message ids.

use std::fmt;
use std::str::FromStr;

/// Why a string is not a valid 24-hex object id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The string does not have exactly 24 characters.
    #[error("an id must be 24 hexadecimal characters, got {0} characters")]
    Length(usize),
    /// The string has a character outside `0-9a-fA-F`.
    #[error("an id must be 24 hexadecimal characters, found a non-hex character")]
    NotHex,
}

/// The 12 bytes of a Mongo-style object id: 4 bytes of seconds since the epoch (big endian),
/// 5 bytes unique to the generating process, 3 bytes of counter.
///
/// Byte order is creation order for ids made by one generator, so ids sort by time.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectIdBytes([u8; 12]);

impl ObjectIdBytes {
    /// Wraps raw bytes.
    pub const fn from_bytes(bytes: [u8; 12]) -> Self {
        Self(bytes)
    }

    /// Builds an id from its parts; `counter` keeps its low 24 bits.
    pub fn from_parts(seconds: u32, process: [u8; 5], counter: u32) -> Self {
        let mut b = [0u8; 12];
        b[..4].copy_from_slice(&seconds.to_be_bytes());
        b[4..9].copy_from_slice(&process);
        b[9..].copy_from_slice(&counter.to_be_bytes()[1..]);
        Self(b)
    }

    /// The raw bytes.
    pub const fn bytes(&self) -> [u8; 12] {
        self.0
    }

    /// Parses 24 hex digits (either case).
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let raw = s.as_bytes();
        if raw.len() != 24 {
            return Err(IdError::Length(s.chars().count()));
        }
        let mut out = [0u8; 12];
        for (i, pair) in raw.chunks_exact(2).enumerate() {
            out[i] = (hex_val(pair[0])? << 4) | hex_val(pair[1])?;
        }
        Ok(Self(out))
    }

    /// Writes the id as 24 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        self.to_string()
    }
}

fn hex_val(c: u8) -> Result<u8, IdError> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(IdError::NotHex),
    }
}

impl fmt::Display for ObjectIdBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ObjectIdBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

macro_rules! object_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(ObjectIdBytes);

        impl $name {
            /// Parses 24 hex digits (either case).
            pub fn parse(s: &str) -> Result<Self, IdError> {
                ObjectIdBytes::parse(s).map(Self)
            }

            /// Wraps already-valid object id bytes.
            pub const fn from_object_id(bytes: ObjectIdBytes) -> Self {
                Self(bytes)
            }

            /// The underlying object id bytes.
            pub const fn object_id(&self) -> ObjectIdBytes {
                self.0
            }

            /// The id as 24 lowercase hex digits.
            pub fn to_hex(&self) -> String {
                self.0.to_hex()
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }
    };
}

object_id!(
    /// The id of a lab request (an order placed by a teacher); also names the request's chat room.
    RequestId
);
object_id!(
    /// The id of a chat message. Ids made by one process sort in creation order.
    MessageId
);

/// Why a string is not a valid user id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UserIdError {
    /// The id is empty or only white space.
    #[error("a user id must not be empty")]
    Empty,
    /// The id is longer than [`UserId::MAX_LEN`] bytes.
    #[error("a user id must be at most {max} bytes, got {0}", max = UserId::MAX_LEN)]
    TooLong(usize),
}

/// The id of a user, as given by the token's `sub` claim (any non-empty string of at most
/// [`UserId::MAX_LEN`] bytes; a 24-hex object id is just a string here).
///
/// Shared, not copied: a connection's user id is held by its session, its sink and its rooms'
/// presence entries, and a clone costs no allocation (it compares, orders and hashes as the
/// string it holds).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserId(std::sync::Arc<str>);

impl UserId {
    /// The longest accepted user id, in bytes.
    pub const MAX_LEN: usize = 256;

    /// Validates a user id. It is kept exactly as given (no trimming or case folding), so it
    /// compares equal only to the very same string.
    pub fn parse(s: impl Into<String>) -> Result<Self, UserIdError> {
        let s = s.into();
        if s.trim().is_empty() {
            return Err(UserIdError::Empty);
        }
        if s.len() > Self::MAX_LEN {
            return Err(UserIdError::TooLong(s.len()));
        }
        Ok(Self(s.into()))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserId({:?})", self.0)
    }
}

/// Why a string is not a valid client message id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientMessageIdError {
    /// The id is empty.
    #[error("clientMessageId must not be empty")]
    Empty,
    /// The id has more than [`ClientMessageId::MAX_CHARS`] characters.
    #[error("clientMessageId must be at most {max} characters, got {0}", max = ClientMessageId::MAX_CHARS)]
    TooLong(usize),
}

/// An id chosen by the client for one send, which makes retries of that send idempotent.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ClientMessageId(String);

impl ClientMessageId {
    /// The longest accepted client message id, in characters.
    pub const MAX_CHARS: usize = 64;

    /// Validates a client message id: 1 to [`Self::MAX_CHARS`] characters, kept as given.
    pub fn parse(s: impl Into<String>) -> Result<Self, ClientMessageIdError> {
        let s = s.into();
        let n = s.chars().count();
        if n == 0 {
            return Err(ClientMessageIdError::Empty);
        }
        if n > Self::MAX_CHARS {
            return Err(ClientMessageIdError::TooLong(n));
        }
        Ok(Self(s))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_ids_round_trip_through_hex() {
        let id = RequestId::parse("6751B6DF1AD14EAA13A03313").unwrap();
        assert_eq!(id.to_hex(), "6751b6df1ad14eaa13a03313");
        assert_eq!(id, "6751b6df1ad14eaa13a03313".parse().unwrap());
    }

    #[test]
    fn object_id_rejects_bad_input() {
        for (input, err) in [
            ("", IdError::Length(0)),
            ("6751b6df1ad14eaa13a0331", IdError::Length(23)),
            ("6751b6df1ad14eaa13a033133", IdError::Length(25)),
            ("6751b6df1ad14eaa13a0331g", IdError::NotHex),
            ("6751b6df1ad14eaa13a0331 ", IdError::NotHex),
            ("éééééééééééé", IdError::NotHex),
        ] {
            assert_eq!(MessageId::parse(input), Err(err), "{input:?}");
        }
    }

    #[test]
    fn ids_from_parts_sort_by_time_then_counter() {
        let p = [1, 2, 3, 4, 5];
        let a = ObjectIdBytes::from_parts(10, p, 0xFF_FFFF);
        let b = ObjectIdBytes::from_parts(11, p, 0);
        let c = ObjectIdBytes::from_parts(11, p, 1);
        assert!(a < b && b < c);
        assert_eq!(b.to_hex(), "0000000b0102030405000000");
    }

    #[test]
    fn user_ids_are_validated_and_kept_verbatim() {
        assert_eq!(UserId::parse(""), Err(UserIdError::Empty));
        assert_eq!(UserId::parse("  "), Err(UserIdError::Empty));
        assert_eq!(UserId::parse("x".repeat(257)), Err(UserIdError::TooLong(257)));
        assert_eq!(UserId::parse(" a ").unwrap().as_str(), " a ");
    }

    #[test]
    fn client_message_ids_count_characters() {
        assert!(ClientMessageId::parse("é".repeat(64)).is_ok());
        assert_eq!(ClientMessageId::parse("é".repeat(65)), Err(ClientMessageIdError::TooLong(65)));
        assert_eq!(ClientMessageId::parse(""), Err(ClientMessageIdError::Empty));
    }
}
