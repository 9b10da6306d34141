//! Errors of the codec.

use core::fmt;

/// Why bytes could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The input ended early: it is a valid prefix, and at least `deficit` more bytes are
    /// needed. On a byte stream this means "wait"; on a complete message, "truncated".
    Incomplete {
        /// How many more bytes are needed at least.
        deficit: usize,
    },
    /// A complete value had bytes left over where none are allowed.
    ExtraBytes,
    /// A length field claims more than its container holds or than the format allows.
    BadLength(&'static str),
    /// The bytes can never be a valid value; the text says what was wrong.
    Invalid(&'static str),
}

impl Error {
    /// True when more input could make decoding succeed.
    pub fn is_incomplete(&self) -> bool {
        matches!(self, Error::Incomplete { .. })
    }

    /// Turn "incomplete" into "invalid": for a message whose length is already known, a
    /// short body is a truncated (malformed) message, not a reason to wait.
    pub fn truncated(self) -> Error {
        match self {
            Error::Incomplete { .. } => Error::Invalid("truncated message"),
            e => e,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Incomplete { deficit } => write!(f, "incomplete: {deficit} more bytes needed"),
            Error::ExtraBytes => f.write_str("unexpected bytes after the end of a value"),
            Error::BadLength(what) => write!(f, "bad length: {what}"),
            Error::Invalid(what) => write!(f, "invalid: {what}"),
        }
    }
}

impl core::error::Error for Error {}

/// Result of decoding.
pub type Result<T> = core::result::Result<T, Error>;

/// Why a value could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// A field is too long for its length prefix, or a body too long for its cell.
    TooLong(&'static str),
    /// A fixed-size writer ran out of room.
    NoRoom,
    /// The value breaks a rule of the format (the text says which).
    Invalid(&'static str),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::TooLong(what) => write!(f, "cannot encode: {what} too long"),
            EncodeError::NoRoom => f.write_str("cannot encode: output buffer full"),
            EncodeError::Invalid(what) => write!(f, "cannot encode: {what}"),
        }
    }
}

impl core::error::Error for EncodeError {}
