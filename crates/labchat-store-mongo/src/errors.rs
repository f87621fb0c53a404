//! Mapping driver errors into [`StoreError`], and bounding calls in time.

use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;

use labchat_core::StoreError;
use mongodb::error::{Error, ErrorKind, IndexedWriteError, WriteFailure};

/// The server's code for a duplicate key.
pub(crate) const DUPLICATE_KEY: i32 = 11000;

/// Server error codes that mean "not now": the server is shutting down, stepping down, not
/// reachable from where it is, or ran out of time. The same call may succeed later.
const TRANSIENT_CODES: &[i32] = &[
    6,     // HostUnreachable
    7,     // HostNotFound
    50,    // MaxTimeMSExpired
    64,    // WriteConcernFailed
    89,    // NetworkTimeout
    91,    // ShutdownInProgress
    134,   // ReadConcernMajorityNotAvailableYet
    189,   // PrimarySteppedDown
    262,   // ExceededTimeLimit
    9001,  // SocketException
    10107, // NotWritablePrimary
    11600, // InterruptedAtShutdown
    11602, // InterruptedDueToReplStateChange
    13435, // NotPrimaryNoSecondaryOk
    13436, // NotPrimaryOrSecondary
];

/// Error labels the driver or server put on failures worth retrying.
const TRANSIENT_LABELS: &[&str] =
    &["RetryableWriteError", "TransientTransactionError", "SystemOverloadedError", "RetryableError"];

/// How a driver error is reported.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Class {
    /// The store could not be reached or did not answer in time: [`StoreError::Unavailable`].
    Unavailable,
    /// Anything else: [`StoreError::Internal`].
    Internal,
}

/// Classifies a driver error.
pub(crate) fn classify(e: &Error) -> Class {
    if TRANSIENT_LABELS.iter().any(|l| e.contains_label(l)) {
        return Class::Unavailable;
    }
    let transient = |code: i32| TRANSIENT_CODES.contains(&code);
    let unavailable = match e.kind.as_ref() {
        ErrorKind::Io(_)
        | ErrorKind::ServerSelection { .. }
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::DnsResolve { .. }
        | ErrorKind::Shutdown => true,
        ErrorKind::Command(c) => transient(c.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(_)) => true,
        ErrorKind::Write(WriteFailure::WriteError(w)) => transient(w.code),
        ErrorKind::InsertMany(m) => {
            let errors = m.write_errors.as_deref().unwrap_or_default();
            // Only a write concern failure, or only transient write errors.
            (errors.is_empty() && m.write_concern_error.is_some())
                || (!errors.is_empty() && errors.iter().all(|w| transient(w.code)))
        }
        _ => false,
    };
    if unavailable { Class::Unavailable } else { Class::Internal }
}

/// A driver error as a [`StoreError`] with context.
pub(crate) fn store_error(context: &str, e: Error) -> StoreError {
    match classify(&e) {
        Class::Unavailable => StoreError::unavailable(context, e),
        Class::Internal => StoreError::internal(context, e),
    }
}

/// The write error of one document of an `insert_many`, as a [`StoreError`] with context:
/// [`StoreError::Unavailable`] for a transient server code, else [`StoreError::Internal`].
pub(crate) fn write_error(context: &str, w: &IndexedWriteError) -> StoreError {
    let e = DocumentWriteError { code: w.code, code_name: w.code_name.clone(), message: w.message.clone() };
    if TRANSIENT_CODES.contains(&w.code) {
        StoreError::unavailable(context, e)
    } else {
        StoreError::internal(context, e)
    }
}

/// The server refused to write one document of several.
#[derive(Debug)]
pub(crate) struct DocumentWriteError {
    code: i32,
    code_name: Option<String>,
    message: String,
}

impl std::fmt::Display for DocumentWriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "write error {}", self.code)?;
        if let Some(name) = &self.code_name {
            write!(f, " ({name})")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for DocumentWriteError {}

/// Bad data found in the store.
pub(crate) fn bad_data(context: &str, what: impl Into<String>) -> StoreError {
    StoreError::internal(context, what.into())
}

/// The store gave no answer within the operation timeout.
#[derive(Debug)]
pub(crate) struct TimedOut(pub(crate) Duration);

impl std::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MongoDB gave no answer within {} ms", self.0.as_millis())
    }
}

impl std::error::Error for TimedOut {}

/// One caller's error for a call it shared with other callers (a coalesced read, a batch of
/// writes) that failed with `cause`: the same kind, with this caller's context.
pub(crate) fn shared(context: &str, cause: Arc<StoreError>) -> StoreError {
    let retryable = cause.is_retryable();
    let source = Shared(cause);
    if retryable { StoreError::unavailable(context, source) } else { StoreError::internal(context, source) }
}

/// A shared call's error, shared by every caller it failed.
#[derive(Debug)]
struct Shared(Arc<StoreError>);

impl std::fmt::Display for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a call shared with other callers failed: {}", self.0)
    }
}

impl std::error::Error for Shared {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// Runs `call`, giving up after `limit`. The outer error is the timeout (already a
/// [`StoreError::Unavailable`]); the inner result is the driver's, for callers that look at
/// particular errors (duplicate keys) before mapping them with [`store_error`].
pub(crate) async fn within<T>(
    limit: Duration,
    context: &str,
    call: impl IntoFuture<Output = Result<T, Error>>,
) -> Result<Result<T, Error>, StoreError> {
    tokio::time::timeout(limit, call.into_future()).await.map_err(|_| StoreError::unavailable(context, TimedOut(limit)))
}

/// Runs `call` within `limit` and maps every failure into a [`StoreError`] with `context`.
pub(crate) async fn bounded<T>(
    limit: Duration,
    context: &str,
    call: impl IntoFuture<Output = Result<T, Error>>,
) -> Result<T, StoreError> {
    within(limit, context, call).await?.map_err(|e| store_error(context, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::{self, doc};
    use mongodb::error::{CommandError, WriteError};

    fn command(code: i32) -> Error {
        let c: CommandError = bson::from_document(doc! {"code": code, "codeName": "X", "errmsg": "m"}).unwrap();
        Error::from(ErrorKind::Command(c))
    }

    fn write(code: i32) -> Error {
        let w: WriteError = bson::from_document(doc! {"code": code, "errmsg": "m"}).unwrap();
        Error::from(ErrorKind::Write(WriteFailure::WriteError(w)))
    }

    #[test]
    fn network_failures_are_unavailable() {
        let io = Error::from(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused"));
        assert_eq!(classify(&io), Class::Unavailable);
        assert!(store_error("x", io).is_retryable());
        assert_eq!(classify(&Error::from(std::io::ErrorKind::TimedOut)), Class::Unavailable);
    }

    #[test]
    fn server_codes_are_classified() {
        for (code, want) in [
            (91, Class::Unavailable),
            (189, Class::Unavailable),
            (10107, Class::Unavailable),
            (50, Class::Unavailable),
            (11000, Class::Internal),
            (2, Class::Internal),
            (13, Class::Internal),
        ] {
            assert_eq!(classify(&command(code)), want, "command {code}");
            assert_eq!(classify(&write(code)), want, "write {code}");
        }
    }

    #[test]
    fn bad_data_is_internal() {
        let de = bson::from_document::<CommandError>(doc! {"code": "not a number"}).unwrap_err();
        let e = Error::from(ErrorKind::BsonDeserialization(de));
        assert_eq!(classify(&e), Class::Internal);
        let err = store_error("read history", e);
        assert!(!err.is_retryable());
        assert_eq!(err.to_string(), "store failure while trying to read history");
    }

    #[tokio::test]
    async fn a_call_that_never_answers_times_out_as_unavailable() {
        let never = std::future::pending::<Result<(), Error>>();
        let err = bounded(Duration::from_millis(20), "ping the store", never).await.unwrap_err();
        assert!(err.is_retryable(), "{err:?}");
        assert_eq!(err.to_string(), "store unavailable while trying to ping the store");
    }
}
