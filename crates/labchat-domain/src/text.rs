//! The text of a chat message and its validation.

/// Why a message text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageTextError {
    /// Nothing but white space.
    #[error("message must not be empty")]
    Empty,
    /// Longer than the configured maximum, in characters.
    #[error("message must be at most {max} characters, got {len}")]
    TooLong {
        /// The text's length in characters.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
}

/// The text of a chat message: not empty after trimming, and at most a configured number of
/// characters (Unicode scalar values). The text is stored exactly as sent, untrimmed.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MessageText(String);

impl MessageText {
    /// The default maximum length, in characters.
    pub const DEFAULT_MAX_CHARS: usize = 4000;

    /// Validates `text` against `max_chars`.
    pub fn parse(text: impl Into<String>, max_chars: usize) -> Result<Self, MessageTextError> {
        let text = text.into();
        if text.trim().is_empty() {
            return Err(MessageTextError::Empty);
        }
        // Cheap bound first: a string of at most max bytes has at most max chars.
        if text.len() > max_chars {
            let len = text.chars().count();
            if len > max_chars {
                return Err(MessageTextError::TooLong { len, max: max_chars });
            }
        }
        Ok(Self(text))
    }

    /// Rebuilds a text that was validated before it was stored, without re-checking its length
    /// (the limit may have changed since). Empty text is still refused.
    pub fn restore(text: impl Into<String>) -> Result<Self, MessageTextError> {
        Self::parse(text, usize::MAX)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_text_rules() {
        let cases: [(&str, usize, Result<(), MessageTextError>); 7] = [
            ("hello", 4000, Ok(())),
            ("", 4000, Err(MessageTextError::Empty)),
            (" \n\t ", 4000, Err(MessageTextError::Empty)),
            ("abcd", 4, Ok(())),
            ("abcde", 4, Err(MessageTextError::TooLong { len: 5, max: 4 })),
            ("éééé", 4, Ok(())),
            ("ééééé", 4, Err(MessageTextError::TooLong { len: 5, max: 4 })),
        ];
        for (text, max, want) in cases {
            assert_eq!(MessageText::parse(text, max).map(|_| ()), want, "{text:?} max {max}");
        }
        assert_eq!(MessageText::parse("  padded  ", 100).unwrap().as_str(), "  padded  ");
    }
}
