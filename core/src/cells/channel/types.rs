//! Small wire types of channel cells: circuit ids and the open integer newtypes
//! (commands, certificate types, handshake types, destroy reasons, ...).

use core::fmt;
use core::num::NonZeroU32;

/// Defines an open integer newtype: named constants for the values the spec knows, and
/// any other value kept as is, so unknown values survive a decode/encode round trip and
/// can still be logged.
macro_rules! open_int {
    (
        $(#[$meta:meta])*
        pub struct $name:ident($int:ty) {
            $( $(#[$cmeta:meta])* $cname:ident = $cval:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub $int);

        impl $name {
            $( $(#[$cmeta])* pub const $cname: $name = $name($cval); )*

            /// The raw value.
            pub const fn get(self) -> $int {
                self.0
            }

            /// The spec's name of this value, or `None` when the value is unknown.
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $( $cval => Some(stringify!($cname)), )*
                    _ => None,
                }
            }

            /// True when the value is one the spec names.
            pub const fn is_recognized(self) -> bool {
                self.name().is_some()
            }
        }

        impl From<$int> for $name {
            fn from(v: $int) -> Self {
                $name(v)
            }
        }

        impl From<$name> for $int {
            fn from(v: $name) -> Self {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.name() {
                    Some(n) => f.write_str(n),
                    None => write!(f, "{}({})", stringify!($name), self.0),
                }
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }
    };
}

/// A circuit id on one channel. Never zero: zero on the wire means "no circuit", which is
/// `Option<CircId>::None` here, so a cell for a circuit cannot carry id 0 by mistake.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CircId(NonZeroU32);

impl CircId {
    /// The smallest circuit id (1); with [`CircId::MAX`], bounds for range scans.
    pub const MIN: CircId = CircId(NonZeroU32::MIN);
    /// The largest circuit id.
    pub const MAX: CircId = CircId(NonZeroU32::MAX);

    /// The circuit id `v`, or `None` for zero.
    pub const fn new(v: u32) -> Option<CircId> {
        match NonZeroU32::new(v) {
            Some(n) => Some(CircId(n)),
            None => None,
        }
    }

    /// The raw value.
    pub const fn get(self) -> u32 {
        self.0.get()
    }

    /// The wire value of an optional circuit id (zero for `None`).
    pub fn raw(id: Option<CircId>) -> u32 {
        id.map_or(0, CircId::get)
    }
}

impl From<CircId> for u32 {
    fn from(id: CircId) -> u32 {
        id.get()
    }
}

impl fmt::Display for CircId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.get())
    }
}

impl fmt::Debug for CircId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CircId({})", self.get())
    }
}

open_int! {
    /// The command byte of a channel cell (tor-spec "Cell packing").
    pub struct ChanCmd(u8) {
        /// Link padding, fixed length; ignored by the receiver.
        PADDING = 0,
        /// Legacy TAP circuit creation.
        CREATE = 1,
        /// Reply to CREATE.
        CREATED = 2,
        /// A relay cell for a circuit.
        RELAY = 3,
        /// Tear a circuit down.
        DESTROY = 4,
        /// Create a circuit without public-key crypto (first hop only).
        CREATE_FAST = 5,
        /// Reply to CREATE_FAST.
        CREATED_FAST = 6,
        /// Link protocol version negotiation; variable length, 2-byte circuit id always.
        VERSIONS = 7,
        /// Time and addresses, ends the link handshake.
        NETINFO = 8,
        /// A relay cell that may carry EXTEND/EXTEND2.
        RELAY_EARLY = 9,
        /// Extensible circuit creation.
        CREATE2 = 10,
        /// Reply to CREATE2.
        CREATED2 = 11,
        /// Negotiate link padding (padding-spec).
        PADDING_NEGOTIATE = 12,
        /// Variable-length link padding.
        VPADDING = 128,
        /// Certificates of the link handshake.
        CERTS = 129,
        /// Challenge for responder authentication.
        AUTH_CHALLENGE = 130,
        /// The initiator's authentication.
        AUTHENTICATE = 131,
        /// Reserved for future authorization; no format is defined.
        AUTHORIZE = 132,
    }
}

/// Whether a command wants a circuit id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CircIdRule {
    /// The cell is about the link: its circuit id must be zero.
    MustBeZero,
    /// The cell is about a circuit: its circuit id must be non-zero.
    MustBeNonZero,
    /// Unknown command: anything goes.
    Any,
}

impl ChanCmd {
    /// True for variable-length cells: VERSIONS, and every command from 128 up.
    pub const fn is_var_len(self) -> bool {
        self.0 == Self::VERSIONS.0 || self.0 >= 128
    }

    /// Which circuit ids the command accepts.
    pub const fn circ_id_rule(self) -> CircIdRule {
        match self {
            Self::PADDING
            | Self::VERSIONS
            | Self::NETINFO
            | Self::PADDING_NEGOTIATE
            | Self::VPADDING
            | Self::CERTS
            | Self::AUTH_CHALLENGE
            | Self::AUTHENTICATE => CircIdRule::MustBeZero,
            Self::CREATE
            | Self::CREATED
            | Self::RELAY
            | Self::DESTROY
            | Self::CREATE_FAST
            | Self::CREATED_FAST
            | Self::RELAY_EARLY
            | Self::CREATE2
            | Self::CREATED2 => CircIdRule::MustBeNonZero,
            _ => CircIdRule::Any,
        }
    }

    /// True when a cell with this command may carry `id`.
    pub const fn allows_circ_id(self, id: Option<CircId>) -> bool {
        match self.circ_id_rule() {
            CircIdRule::MustBeZero => id.is_none(),
            CircIdRule::MustBeNonZero => id.is_some(),
            CircIdRule::Any => true,
        }
    }
}

open_int! {
    /// The type of one certificate in a CERTS cell (tor-spec "CERTS cells").
    pub struct CertType(u8) {
        /// X.509 link certificate (RSA, legacy).
        LINK_X509 = 1,
        /// Self-signed RSA1024 identity certificate.
        ID_X509_RSA1024 = 2,
        /// X.509 RSA authentication certificate (legacy).
        AUTH_X509 = 3,
        /// Ed25519 identity key signing the signing key.
        ED_ID_SIGNING = 4,
        /// Ed25519 signing key signing the TLS link certificate.
        ED_SIGNING_LINK = 5,
        /// Ed25519 signing key signing the authentication key.
        ED_SIGNING_AUTH = 6,
        /// RSA identity key cross-certifying the Ed25519 identity.
        RSA_ED_CROSSCERT = 7,
    }
}

open_int! {
    /// An authentication method in AUTH_CHALLENGE and AUTHENTICATE cells.
    pub struct AuthMethod(u16) {
        /// RSA-SHA256-TLSSecret (obsolete).
        RSA_SHA256_TLSSECRET = 1,
        /// Ed25519-SHA256-RFC5705, the current method.
        ED25519_SHA256_RFC5705 = 3,
    }
}

open_int! {
    /// The handshake type of CREATE2 (and EXTEND2) cells.
    pub struct HandshakeType(u16) {
        /// The legacy TAP handshake.
        TAP = 0,
        /// ntor (curve25519).
        NTOR = 2,
        /// ntor v3, with encrypted extensions.
        NTOR_V3 = 3,
    }
}

open_int! {
    /// Why a circuit was destroyed (tor-spec "Tearing down circuits").
    pub struct DestroyReason(u8) {
        /// No reason given.
        NONE = 0,
        /// Tor protocol violation.
        PROTOCOL = 1,
        /// Internal error.
        INTERNAL = 2,
        /// A client sent a TRUNCATE command.
        REQUESTED = 3,
        /// Not currently operating; trying to save bandwidth.
        HIBERNATING = 4,
        /// Out of memory, sockets, or circuit ids.
        RESOURCELIMIT = 5,
        /// Unable to reach the relay.
        CONNECTFAILED = 6,
        /// Connected to the relay, but its identity was not as expected.
        OR_IDENTITY = 7,
        /// The channel carrying this circuit died.
        CHANNEL_CLOSED = 8,
        /// The circuit has expired for being dirty or old.
        FINISHED = 9,
        /// Circuit construction took too long.
        TIMEOUT = 10,
        /// The circuit was destroyed without a client TRUNCATE.
        DESTROYED = 11,
        /// Request for an unknown hidden service.
        NOSUCHSERVICE = 12,
    }
}

open_int! {
    /// The command of a PADDING_NEGOTIATE cell (padding-spec).
    pub struct PaddingNegotiateCmd(u8) {
        /// Stop padding on this link.
        STOP = 1,
        /// Start padding with the given inactivity timeout range.
        START = 2,
    }
}
