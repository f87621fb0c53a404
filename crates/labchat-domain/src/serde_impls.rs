//! `Serialize` and `Deserialize` for the validated newtypes (feature `serde`).
//!
//! Each type is written in its canonical text or number form and read back through the same
//! constructor the rest of the code uses, so deserializing never builds a value the domain would
//! refuse: the constructor's error becomes the deserializer's error. The representation is listed
//! in the crate docs; the structs and enums that hold these types derive serde where they are
//! declared.

use std::fmt::Display;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{ClientMessageId, MessageId, MessageText, ObjectIdBytes, RequestId, Role, Seq, Timestamp, UserId};

/// Reads a `T` through `make`, turning its refusal into a deserialization error.
fn validated<'de, D, R, T, E>(d: D, make: impl FnOnce(R) -> Result<T, E>) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    R: Deserialize<'de>,
    E: Display,
{
    make(R::deserialize(d)?).map_err(D::Error::custom)
}

/// Object ids: 24 lowercase hex digits (either case is read).
macro_rules! hex_id {
    ($($ty:ty),+) => {$(
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                validated(d, |s: String| <$ty>::parse(&s))
            }
        }
    )+};
}

hex_id!(ObjectIdBytes, RequestId, MessageId);

/// Strings kept verbatim, validated by `$parse`.
macro_rules! text {
    ($($ty:ty => $parse:expr),+ $(,)?) => {$(
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                validated(d, $parse)
            }
        }
    )+};
}

text!(
    UserId => |s: String| UserId::parse(s),
    ClientMessageId => |s: String| ClientMessageId::parse(s),
    // A stored or published text was checked against the length limit when it was sent (the limit
    // may have changed since): only emptiness is checked again, as `MessageText::restore` does.
    MessageText => |s: String| MessageText::restore(s),
    Role => |s: String| Role::parse(&s),
);

impl Serialize for Seq {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.get())
    }
}

impl<'de> Deserialize<'de> for Seq {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        validated(d, Seq::new)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(self.unix_millis())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        i64::deserialize(d).map(Timestamp::from_unix_millis)
    }
}

/// For lists the domain documents as never empty (the ids of a receipt event).
pub(crate) fn non_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    let list = Vec::<T>::deserialize(d)?;
    if list.is_empty() {
        return Err(D::Error::invalid_length(0, &"at least one element"));
    }
    Ok(list)
}
