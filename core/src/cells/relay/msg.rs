//! The `RelayMsg` enum over every relay message, and the trait each message implements.

use alloc::vec::Vec;

use super::cmd::RelayCmd;
use super::peersm::*;
use super::signal::PeerSignal;
use super::tor::*;
use crate::codec::{EncodeError, Reader, Result, Writer};

/// A relay message body: one command, one layout.
pub trait RelayBody: Sized {
    /// The relay command that carries this message.
    const CMD: RelayCmd;
    /// Decode from the relay cell's data (exactly `length` bytes; padding already removed).
    fn decode_body(body: &[u8]) -> Result<Self>;
    /// Encode the data part of the relay cell.
    fn encode_body<W: Writer + ?Sized>(&self, w: &mut W) -> core::result::Result<(), EncodeError>;
}

/// Run `f` over the whole body: a short body is malformed (not "wait for more"), and bytes
/// left over are an error.
pub(crate) fn decode_all<'a, T>(
    body: &'a [u8],
    f: impl FnOnce(&mut Reader<'a>) -> Result<T>,
) -> Result<T> {
    Reader::new(body).read_nested(body.len(), f)
}

macro_rules! relay_msgs {
    ($( $(#[$doc:meta])* $variant:ident($ty:ty), )*) => {
        /// Any relay message. Commands we do not parse (onion-service, conflux, ...) and
        /// unknown commands are kept as [`RelayMsg::Unrecognized`] so they round-trip.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum RelayMsg {
            $( $(#[$doc])* $variant($ty), )*
            /// A command we do not parse, with its raw data.
            Unrecognized {
                /// The command.
                cmd: RelayCmd,
                /// The data bytes.
                body: Vec<u8>,
            },
        }

        impl RelayMsg {
            /// The relay command of this message.
            pub fn cmd(&self) -> RelayCmd {
                match self {
                    $( RelayMsg::$variant(_) => <$ty as RelayBody>::CMD, )*
                    RelayMsg::Unrecognized { cmd, .. } => *cmd,
                }
            }

            /// Decode the data of a relay cell carrying `cmd`.
            pub fn decode(cmd: RelayCmd, body: &[u8]) -> Result<RelayMsg> {
                $( if cmd == <$ty as RelayBody>::CMD {
                    return <$ty as RelayBody>::decode_body(body).map(RelayMsg::$variant);
                } )*
                Ok(RelayMsg::Unrecognized { cmd, body: body.into() })
            }

            /// Encode the data part (without the relay header).
            pub fn encode_body<W: Writer + ?Sized>(
                &self,
                w: &mut W,
            ) -> core::result::Result<(), EncodeError> {
                match self {
                    $( RelayMsg::$variant(m) => m.encode_body(w), )*
                    RelayMsg::Unrecognized { cmd, body } => {
                        if RelayMsg::is_parsed(*cmd) {
                            return Err(EncodeError::Invalid("parsed command as Unrecognized"));
                        }
                        w.write_all(body);
                        Ok(())
                    }
                }
            }

            /// True when `cmd` has its own variant (so `Unrecognized` may not carry it).
            pub fn is_parsed(cmd: RelayCmd) -> bool {
                false $( || cmd == <$ty as RelayBody>::CMD )*
            }
        }

        $( impl From<$ty> for RelayMsg {
            fn from(m: $ty) -> RelayMsg {
                RelayMsg::$variant(m)
            }
        } )*
    };
}

relay_msgs! {
    /// BEGIN.
    Begin(Begin),
    /// DATA.
    Data(Data),
    /// END.
    End(End),
    /// CONNECTED.
    Connected(Connected),
    /// SENDME.
    Sendme(Sendme),
    /// TRUNCATE.
    Truncate(Truncate),
    /// TRUNCATED.
    Truncated(Truncated),
    /// DROP.
    Drop(DropMsg),
    /// RESOLVE.
    Resolve(Resolve),
    /// RESOLVED.
    Resolved(Resolved),
    /// BEGIN_DIR.
    BeginDir(BeginDir),
    /// EXTEND2.
    Extend2(Extend2),
    /// EXTENDED2.
    Extended2(Extended2),
    /// DB_INFO.
    DbInfo(DbInfo),
    /// DB_QUERY.
    DbQuery(DbQuery),
    /// DB_CONNECTED.
    DbConnected(DbConnected),
    /// DB_DATA.
    DbData(DbData),
    /// DB_END.
    DbEnd(DbEnd),
    /// DB_SENDME.
    DbSendme(DbSendme),
    /// DB_FIND_PEER.
    DbFindPeer(DbFindPeer),
    /// DB_FOUND_PEER.
    DbFoundPeer(DbFoundPeer),
    /// DHT_PING.
    DhtPing(DhtPing),
    /// DHT_FIND_NODE.
    DhtFindNode(DhtFindNode),
    /// DHT_FOUND.
    DhtFound(DhtFound),
    /// DHT_STORE.
    DhtStore(DhtStore),
    /// DHT_FIND_VALUE.
    DhtFindValue(DhtFindValue),
    /// DB_HASHES.
    DbHashes(DbHashes),
    /// DB_SEGMENT.
    DbSegment(DbSegment),
    /// PEER_SIGNAL.
    PeerSignal(PeerSignal),
}
