//! Relay commands and stream ids: the two header fields that say what a relay cell is and
//! which stream it belongs to.

use core::fmt;
use core::num::NonZeroU16;

/// The command byte of a relay cell (an open set: unknown values are kept, as Tor must
/// tolerate commands from newer versions).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelayCmd(pub u8);

/// Which stream ids a relay command may carry (tor-spec: stream-level commands need a
/// non-zero id, circuit-level ones need zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamIdRule {
    /// The command belongs to a stream: the id must be non-zero.
    Required,
    /// The command belongs to the circuit: the id must be zero.
    Forbidden,
    /// Either is accepted (SENDME: zero = circuit window, non-zero = stream window).
    Any,
}

macro_rules! relay_cmds {
    ($( $(#[$doc:meta])* $name:ident = $v:expr, $rule:ident; )*) => {
        impl RelayCmd {
            $( $(#[$doc])* pub const $name: RelayCmd = RelayCmd($v); )*

            /// The command's name, if it is one we know.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $( $v => Some(stringify!($name)), )*
                    _ => None,
                }
            }

            /// Which stream ids this command may carry; unknown commands accept any.
            pub fn stream_id_rule(self) -> StreamIdRule {
                match self.0 {
                    $( $v => StreamIdRule::$rule, )*
                    _ => StreamIdRule::Any,
                }
            }
        }
    };
}

relay_cmds! {
    /// Open a TCP stream to an exit target.
    BEGIN = 1, Required;
    /// Stream payload.
    DATA = 2, Required;
    /// Close a stream.
    END = 3, Required;
    /// The stream's target answered.
    CONNECTED = 4, Required;
    /// Flow-control window increment (circuit with id 0, stream otherwise).
    SENDME = 5, Any;
    /// Obsolete TAP-only circuit extension.
    EXTEND = 6, Forbidden;
    /// Answer to EXTEND.
    EXTENDED = 7, Forbidden;
    /// Tear down the circuit after this hop.
    TRUNCATE = 8, Forbidden;
    /// The circuit was truncated here.
    TRUNCATED = 9, Forbidden;
    /// Long-range padding, ignored by the receiver.
    DROP = 10, Forbidden;
    /// Ask the exit to resolve a hostname.
    RESOLVE = 11, Required;
    /// Answer to RESOLVE.
    RESOLVED = 12, Required;
    /// Open a stream to the relay's directory port.
    BEGIN_DIR = 13, Required;
    /// Extend the circuit by one hop (link specifiers + CREATE2 handshake).
    EXTEND2 = 14, Forbidden;
    /// Answer to EXTEND2.
    EXTENDED2 = 15, Forbidden;
    /// UDP stream open (proposal 339, reserved).
    CONNECT_UDP = 16, Required;
    /// UDP stream opened (proposal 339, reserved).
    CONNECTED_UDP = 17, Required;
    /// UDP datagram (proposal 339, reserved).
    DATAGRAM = 18, Required;
    /// Conflux: link a circuit into a set.
    CONFLUX_LINK = 19, Forbidden;
    /// Conflux: answer to LINK.
    CONFLUX_LINKED = 20, Forbidden;
    /// Conflux: acknowledge LINKED.
    CONFLUX_LINKED_ACK = 21, Forbidden;
    /// Conflux: switch the sending leg.
    CONFLUX_SWITCH = 22, Forbidden;
    /// Onion services: become an introduction point.
    ESTABLISH_INTRO = 32, Forbidden;
    /// Onion services: become a rendezvous point.
    ESTABLISH_RENDEZVOUS = 33, Forbidden;
    /// Onion services: client to introduction point.
    INTRODUCE1 = 34, Forbidden;
    /// Onion services: introduction point to service.
    INTRODUCE2 = 35, Forbidden;
    /// Onion services: service to rendezvous point.
    RENDEZVOUS1 = 36, Forbidden;
    /// Onion services: rendezvous point to client.
    RENDEZVOUS2 = 37, Forbidden;
    /// Onion services: answer to ESTABLISH_INTRO.
    INTRO_ESTABLISHED = 38, Forbidden;
    /// Onion services: answer to ESTABLISH_RENDEZVOUS.
    RENDEZVOUS_ESTABLISHED = 39, Forbidden;
    /// Onion services: answer to INTRODUCE1.
    INTRODUCE_ACK = 40, Forbidden;
    /// Circuit padding negotiation.
    PADDING_NEGOTIATE = 41, Forbidden;
    /// Answer to PADDING_NEGOTIATE.
    PADDING_NEGOTIATED = 42, Forbidden;
    /// Stream flow control: stop sending (proposal 324).
    XOFF = 43, Required;
    /// Stream flow control: resume sending (proposal 324).
    XON = 44, Required;
    /// Peersm: "I have part of this file" (node-Tor's number).
    DB_INFO = 80, Any;
    /// Peersm: ask for a file's info (nb chunks 0) or chunks (node-Tor's number).
    DB_QUERY = 81, Required;
    /// Peersm: a file's size, type and public key (node-Tor's number).
    DB_CONNECTED = 82, Required;
    /// Peersm: one chunk of a file (node-Tor's number).
    DB_DATA = 83, Required;
    /// Peersm: end of a query (node-Tor's number).
    DB_END = 84, Required;
    /// Peersm: chunk-window increment (node-Tor's number).
    DB_SENDME = 85, Required;
    /// Peersm: register with a bridge and ask for a peer.
    DB_FIND_PEER = 86, Required;
    /// Peersm: a bridge's answer to DB_FIND_PEER.
    DB_FOUND_PEER = 87, Required;
    /// Peersm DHT: liveness check and its reply.
    DHT_PING = 88, Required;
    /// Peersm DHT: ask for the nodes closest to an id.
    DHT_FIND_NODE = 89, Required;
    /// Peersm DHT: answer to FIND_NODE / FIND_VALUE.
    DHT_FOUND = 90, Required;
    /// Peersm DHT: "this peer holds this hash_name".
    DHT_STORE = 91, Any;
    /// Peersm DHT: ask who holds a hash_name.
    DHT_FIND_VALUE = 92, Required;
    /// Peersm: hashes of one node's children in a content tree (data validation).
    DB_HASHES = 93, Required;
    /// Peersm: signed header of a live-stream segment (data validation).
    DB_SEGMENT = 94, Required;
    /// Peersm: one fragment of a WebRTC offer or answer between two peers, passed on by a
    /// peer both share a circuit with (circuit-level).
    PEER_SIGNAL = 95, Forbidden;
}

impl fmt::Debug for RelayCmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for RelayCmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "RelayCmd({})", self.0),
        }
    }
}

impl From<u8> for RelayCmd {
    fn from(v: u8) -> Self {
        RelayCmd(v)
    }
}

impl From<RelayCmd> for u8 {
    fn from(c: RelayCmd) -> u8 {
        c.0
    }
}

/// A stream's id within its circuit: never zero (zero in the header means "no stream", which
/// is `Option<StreamId>::None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId(NonZeroU16);

impl StreamId {
    /// The lowest stream id (for ranges over ids).
    pub const MIN: StreamId = StreamId(NonZeroU16::MIN);
    /// The highest stream id.
    pub const MAX: StreamId = StreamId(NonZeroU16::MAX);

    /// The id `v`, or `None` for zero.
    pub const fn new(v: u16) -> Option<StreamId> {
        match NonZeroU16::new(v) {
            Some(n) => Some(StreamId(n)),
            None => None,
        }
    }

    /// The wire value.
    pub const fn get(self) -> u16 {
        self.0.get()
    }

    /// The header value of an optional stream id (zero for none).
    pub fn to_wire(id: Option<StreamId>) -> u16 {
        id.map_or(0, StreamId::get)
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
