//! The Peersm messages carried in relay cells (seed, section "Messages format"), and the
//! DHT messages the seed names but does not lay out. Layouts and our choices are in
//! `core/PROTOCOL.md`.

use alloc::string::String;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr};

use super::MAX_DATA_LEN;
use super::cmd::RelayCmd;
use super::msg::{RelayBody, decode_all};
use crate::codec::{EncodeError, Error, Reader, Result, Writer};
use crate::crypto::identity::PeerId;

type EncResult = core::result::Result<(), EncodeError>;

/// Largest DB_DATA payload: a relay cell's data minus the chunk number and signature.
pub const MAX_CHUNK_DATA_LEN: usize = MAX_DATA_LEN - 12;

/// Highest DB_QUERY counter (the seed: "Counter 0 to 5"; at 5 an ORDB answers DB_END).
pub const MAX_QUERY_COUNTER: u8 = 5;

/// Most peers one DHT_FOUND may list (a Kademlia bucket).
pub const MAX_FOUND_PEERS: usize = 8;

/// The name of a file or stream: opaque bytes (a BitTorrent infohash, say), 1 to 255 long.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HashName(Vec<u8>);

impl HashName {
    /// `bytes` as a hash_name; fails when empty or longer than 255 bytes.
    pub fn new(bytes: &[u8]) -> core::result::Result<HashName, EncodeError> {
        if bytes.is_empty() || bytes.len() > 255 {
            return Err(EncodeError::Invalid("hash_name must be 1..=255 bytes"));
        }
        Ok(HashName(bytes.into()))
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    fn take(r: &mut Reader<'_>) -> Result<HashName> {
        let b = r.take_u8_prefixed()?;
        if b.is_empty() {
            return Err(Error::BadLength("empty hash_name"));
        }
        Ok(HashName(b.into()))
    }

    fn put<W: Writer + ?Sized>(&self, w: &mut W) -> EncResult {
        w.write_u8_prefixed(&self.0)
    }
}

/// Read a 1-byte length then that many bytes of big-endian unsigned integer (0..=8 bytes;
/// length 0 is the value 0). Non-minimal forms are accepted.
fn take_var_uint(r: &mut Reader<'_>) -> Result<u64> {
    let b = r.take_u8_prefixed()?;
    if b.len() > 8 {
        return Err(Error::BadLength("integer longer than 8 bytes"));
    }
    Ok(b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
}

/// Write `v` as a 1-byte length then its minimal big-endian bytes (0 has the empty form).
/// Minimal means a re-encoded value is never longer than any form the decoder accepts, so
/// a decoded message always fits its cell again.
fn put_var_uint<W: Writer + ?Sized>(w: &mut W, v: u64) {
    let bytes = v.to_be_bytes();
    let skip = (v.leading_zeros() / 8) as usize;
    let b = bytes.get(skip..).unwrap_or(&[]);
    w.write_u8(b.len() as u8);
    w.write_all(b);
}

/// Ask an ORDB for a file's info (`nb_chunks == 0`, answered by DB_CONNECTED) or for
/// `nb_chunks` chunks from `chunk` (answered by DB_DATA cells). The seed's first query is
/// `'abcd' 1 0 0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbQuery {
    /// What to fetch.
    pub hash_name: HashName,
    /// First chunk wanted. For a live stream, 0 lets the ORDB pick the position (the seed's
    /// OR_streams_P lookup).
    pub chunk: u64,
    /// How many chunks; 0 asks for the file info.
    pub nb_chunks: u16,
    /// How many ORDBs forwarded the query so far (0..=5): stops loops between ORDBs.
    pub counter: u8,
}

impl RelayBody for DbQuery {
    const CMD: RelayCmd = RelayCmd::DB_QUERY;
    fn decode_body(body: &[u8]) -> Result<Self> {
        decode_all(body, |r| {
            let hash_name = HashName::take(r)?;
            let chunk = take_var_uint(r)?;
            let nb_chunks = r.take_u16()?;
            let counter = r.take_u8()?;
            if counter > MAX_QUERY_COUNTER {
                return Err(Error::Invalid("DB_QUERY counter above 5"));
            }
            Ok(DbQuery {
                hash_name,
                chunk,
                nb_chunks,
                counter,
            })
        })
    }
    fn encode_body<W: Writer + ?Sized>(&self, w: &mut W) -> EncResult {
        if self.counter > MAX_QUERY_COUNTER {
            return Err(EncodeError::Invalid("DB_QUERY counter above 5"));
        }
        self.hash_name.put(w)?;
        put_var_uint(w, self.chunk);
        w.write_u16(self.nb_chunks);
        w.write_u8(self.counter);
        Ok(())
    }
}

/// A file's info: the answer to a DB_QUERY with `nb_chunks == 0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbConnected {
    /// File size in bytes.
    pub size: u64,
    /// MIME type, 0..=255 bytes of UTF-8.
    pub mime_type: String,
    /// The seeder's public key (2-byte length: our choice, the seed leaves it open).
    pub public_key: Vec<u8>,
    /// Bytes after the public key, kept verbatim: reserved for the data-validation field
    /// (issue 7). Empty today.
    pub trailer: Vec<u8>,
}

impl RelayBody for DbConnected {
    const CMD: RelayCmd = RelayCmd::DB_CONNECTED;
    fn decode_body(body: &[u8]) -> Result<Self> {
        decode_all(body, |r| {
            let size = take_var_uint(r)?;
            let mime_type = core::str::from_utf8(r.take_u8_prefixed()?)
                .map_err(|_| Error::Invalid("DB_CONNECTED: MIME type not UTF-8"))?
                .into();
            let public_key = r.take_u16_prefixed()?.into();
            let trailer = r.take_rest().into();
            Ok(DbConnected {
                size,
                mime_type,
                public_key,
                trailer,
            })
        })
    }
    fn encode_body<W: Writer + ?Sized>(&self, w: &mut W) -> EncResult {
        put_var_uint(w, self.size);
        w.write_u8_prefixed(self.mime_type.as_bytes())?;
        w.write_u16_prefixed(&self.public_key)?;
        w.write_all(&self.trailer);
        Ok(())
    }
}

/// The seed's 8-byte per-chunk tag: `[timestamp in seconds 4B][first 4 bytes of the
/// signature 4B]`. A receiver cannot verify it; see PROTOCOL.md "Data validation".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChunkSignature(pub [u8; 8]);

impl ChunkSignature {
    /// A tag from its two halves.
    pub fn new(timestamp: u32, sig_prefix: [u8; 4]) -> ChunkSignature {
        let mut b = [0; 8];
        b[..4].copy_from_slice(&timestamp.to_be_bytes());
        b[4..].copy_from_slice(&sig_prefix);
        ChunkSignature(b)
    }
    /// The timestamp, seconds (big-endian).
    pub fn timestamp(&self) -> u32 {
        let [a, b, c, d, ..] = self.0;
        u32::from_be_bytes([a, b, c, d])
    }
    /// The first four bytes of the signature.
    pub fn sig_prefix(&self) -> [u8; 4] {
        let [.., a, b, c, d] = self.0;
        [a, b, c, d]
    }
}

/// One chunk of a file (answer to a DB_QUERY with `nb_chunks != 0`). Inline buffer: no
/// allocation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DbData {
    /// Chunk number.
    pub chunk: u32,
    /// The seed's per-chunk tag.
    pub signature: ChunkSignature,
    /// Chunk bytes, up to 486.
    pub data: heapless::Vec<u8, MAX_CHUNK_DATA_LEN>,
}

impl DbData {
    /// DB_DATA with `bytes`; fails when they do not fit in one cell.
    pub fn new(
        chunk: u32,
        signature: ChunkSignature,
        bytes: &[u8],
    ) -> core::result::Result<DbData, EncodeError> {
        let data = heapless::Vec::from_slice(bytes)
            .map_err(|_| EncodeError::TooLong("DB_DATA payload"))?;
        Ok(DbData {
            chunk,
            signature,
            data,
        })
    }
}

impl RelayBody for DbData {
    const CMD: RelayCmd = RelayCmd::DB_DATA;
    fn decode_body(body: &[u8]) -> Result<Self> {
        decode_all(body, |r| {
            let chunk = r.take_u32()?;
            let signature = ChunkSignature(r.take_array()?);
            let data = heapless::Vec::from_slice(r.take_rest())
                .map_err(|_| Error::BadLength("DB_DATA payload"))?;
            Ok(DbData {
                chunk,
                signature,
                data,
            })
        })
    }
    fn encode_body<W: Writer + ?Sized>(&self, w: &mut W) -> EncResult {
        w.write_u32(self.chunk);
        w.write_all(&self.signature.0);
        w.write_all(&self.data);
        Ok(())
    }
}

/// How much of a file a peer has (DB_INFO's and DHT_STORE's `P`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Progress {
    /// P = 0: 25 %.
    Quarter = 0,
    /// P = 1: 50 %.
    Half = 1,
    /// P = 2: 75 %.
    ThreeQuarters = 2,
    /// P = 3: 100 %.
    Full = 3,
}

impl Progress {
    /// The wire byte.
    pub fn to_u8(self) -> u8 {
        self as u8
    }
    /// The share of the file, in percent.
    pub fn percent(self) -> u8 {
        (self as u8 + 1) * 25
    }
    /// The quarter `held` of `total` chunks reaches, rounded down; `None` under 25 %.
    pub fn of(held: u64, total: u64) -> Option<Progress> {
        match held.min(total).saturating_mul(4) / total.max(1) {
            0 => None,
            1 => Some(Progress::Quarter),
            2 => Some(Progress::Half),
            3 => Some(Progress::ThreeQuarters),
            _ => Some(Progress::Full),
        }
    }
    fn from_u8(v: u8) -> Result<Progress> {
        Ok(match v {
            0 => Progress::Quarter,
            1 => Progress::Half,
            2 => Progress::ThreeQuarters,
            3 => Progress::Full,
            _ => return Err(Error::Invalid("P must be 0..=3")),
        })
    }
}

/// "I have part of this file": a peer's advertisement to its ORDBs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbInfo {
    /// The file.
    pub hash_name: HashName,
    /// How much of it.
    pub progress: Progress,
    /// The sender is a facilitator (F byte present and 1). An F byte of 0 decodes as
    /// `false`; `false` is encoded by omitting F (unless `have` follows).
    pub facilitator: bool,
    /// Chunks held from the file's start, when the sender holds part of a file (our
    /// extension, after F): ORDBs send a query only to a peer that holds its range.
    /// `None`: the whole content, or not said.
    pub have: Option<u32>,
}

impl RelayBody for DbInfo {
    const CMD: RelayCmd = RelayCmd::DB_INFO;
    fn decode_body(body: &[u8]) -> Result<Self> {
        decode_all(body, |r| {
            let hash_name = HashName::take(r)?;
            let progress = Progress::from_u8(r.take_u8()?)?;
            let facilitator = match r.remaining() {
                0 => false,
                _ => match r.take_u8()? {
                    0 => false,
                    1 => true,
                    _ => return Err(Error::Invalid("DB_INFO: F must be 0 or 1")),
                },
            };
            let have = match r.remaining() {
                0 => None,
                _ => Some(r.take_u32()?),
            };
            Ok(DbInfo {
                hash_name,
                progress,
                facilitator,
                have,
            })
        })
    }
    fn encode_body<W: Writer + ?Sized>(&self, w: &mut W) -> EncResult {
        self.hash_name.put(w)?;
        w.write_u8(self.progress.to_u8());
        if self.facilitator || self.have.is_some() {
            w.write_u8(self.facilitator.into());
        }
        if let Some(h) = self.have {
            w.write_u32(h);
        }
        Ok(())
    }
}

/// Why a Peersm query ended (an open set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DbEndReason(pub u8);

impl DbEndReason {
    /// The file is not available.
    pub const UNAVAILABLE: DbEndReason = DbEndReason(0);
    /// Aborted by the requesting party.
    pub const FINISHED: DbEndReason = DbEndReason(1);
    /// Destroyed by the serving party.
    pub const DESTROYED: DbEndReason = DbEndReason(2);
}

/// End of a Peersm query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbEnd {
    /// Why.
    pub reason: DbEndReason,
}

impl RelayBody for DbEnd {
    const CMD: RelayCmd = RelayCmd::DB_END;
    fn decode_body(body: &[u8]) -> Result<Self> {
        decode_all(body, |r| {
            Ok(DbEnd {
                reason: DbEndReason(r.take_u8()?),
            })
        })
    }
    fn encode_body<W: Writer + ?Sized>(&self, w: &mut W) -> EncResult {
        w.write_u8(self.reason.0);
        Ok(())
    }
}

/// Chunk-window increment: the downloader consumed `chunks` more chunks, so the sender may
/// send that many more. Our definition; the seed names DB_SENDME without a layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbSendme {
    /// Chunks consumed.
    pub chunks: u16,
}

impl RelayBody for DbSendme {
    const CMD: RelayCmd = RelayCmd::DB_SENDME;
    fn decode_body(body: &[u8]) -> Result<Self> {
        decode_all(body, |r| {
            Ok(DbSendme {
                chunks: r.take_u16()?,
            })
        })
    }
    fn encode_body<W: Writer + ?Sized>(&self, w: &mut W) -> EncResult {
        w.write_u16(self.chunks);
        Ok(())
    }
}

/// Reads a u8-length-prefixed peer id, which must be 20 bytes.
fn take_peer_id(r: &mut Reader<'_>) -> Result<PeerId> {
    let b = r.take_u8_prefixed()?;
    b.try_into()
        .map(PeerId)
        .map_err(|_| Error::BadLength("peer id must be 20 bytes"))
}

fn put_peer_id<W: Writer + ?Sized>(w: &mut W, id: &PeerId) -> EncResult {
    w.write_u8_prefixed(&id.0)
}

/// RSA modulus bytes (1..=255; the seed's keys have 128).
fn take_modulus(r: &mut Reader<'_>) -> Result<Vec<u8>> {
    let m = r.take_u8_prefixed()?;
    if m.is_empty() {
        return Err(Error::BadLength("empty modulus"));
    }
    Ok(m.into())
}

fn put_modulus<W: Writer + ?Sized>(w: &mut W, m: &[u8]) -> EncResult {
    if m.is_empty() {
        return Err(EncodeError::Invalid("empty modulus"));
    }
    w.write_u8_prefixed(m)
}

/// How to reach a peer: the seed's `[ID len 1B][ID][IP len 1B][IP][port len 1B][port]
/// [modulus len 1B][modulus]`, then our `[ntor key len 1B (0 or 32)][ntor key]`, required
/// (records are concatenated in DHT_FOUND, so an optional trailing field could not be
/// told from the next record). See PROTOCOL.md section 3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerRecord {
    /// Its id (20 bytes on the wire, other lengths rejected).
    pub id: PeerId,
    /// Its address (4 or 16 bytes on the wire).
    pub ip: IpAddr,
    /// Its port (2 bytes on the wire).
    pub port: u16,
    /// Its RSA public modulus (1..=255 bytes).
    pub modulus: Vec<u8>,
    /// Its curve25519 ntor onion key, needed to extend a circuit to it (length 0 on the
    /// wire when unknown).
    pub ntor_key: Option<[u8; 32]>,
}

impl PeerRecord {
    fn take(r: &mut Reader<'_>) -> Result<PeerRecord> {
        let id = take_peer_id(r)?;
        let ip = match r.take_u8_prefixed()? {
            &[a, b, c, d] => IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
            b => IpAddr::V6(
                <[u8; 16]>::try_from(b)
                    .map_err(|_| Error::BadLength("IP must be 4 or 16 bytes"))?
                    .into(),
            ),
        };
        let port = match r.take_u8_prefixed()? {
            &[a, b] => u16::from_be_bytes([a, b]),
            _ => return Err(Error::BadLength("port must be 2 bytes")),
        };
        let modulus = take_modulus(r)?;
        let ntor_key = match r.take_u8_prefixed()? {
            [] => None,
            k => Some(
                <[u8; 32]>::try_from(k)
                    .map_err(|_| Error::BadLength("ntor key must be 0 or 32 bytes"))?,
            ),
        };
        Ok(PeerRecord {
            id,
            ip,
            port,
            modulus,
            ntor_key,
        })
    }

    fn put<W: Writer + ?Sized>(&self, w: &mut W) -> EncResult {
        put_peer_id(w, &self.id)?;
        match self.ip {
            IpAddr::V4(a) => w.write_u8_prefixed(&a.octets())?,
            IpAddr::V6(a) => w.write_u8_prefixed(&a.octets())?,
        }
        w.write_u8_prefixed(&self.port.to_be_bytes())?;
        put_modulus(w, &self.modulus)?;
        match &self.ntor_key {
            Some(k) => w.write_u8_prefixed(k),
            None => w.write_u8_prefixed(&[]),
        }
    }
}

/// A peer registers with a bridge (its own record) and asks for a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbFindPeer {
    /// The asker.
    pub peer: PeerRecord,
}

impl RelayBody for DbFindPeer {
    const CMD: RelayCmd = RelayCmd::DB_FIND_PEER;
    fn decode_body(body: &[u8]) -> Result<Self> {
        decode_all(body, |r| {
            Ok(DbFindPeer {
                peer: PeerRecord::take(r)?,
            })
        })
    }
    fn encode_body<W: Writer + ?Sized>(&self, w: &mut W) -> EncResult {
        self.peer.put(w)
    }
}

/// A bridge's answer: one peer connected to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbFoundPeer {
    /// The peer.
    pub peer: PeerRecord,
}

impl RelayBody for DbFoundPeer {
    const CMD: RelayCmd = RelayCmd::DB_FOUND_PEER;
    fn decode_body(body: &[u8]) -> Result<Self> {
        decode_all(body, |r| {
            Ok(DbFoundPeer {
                peer: PeerRecord::take(r)?,
            })
        })
    }
    fn encode_body<W: Writer + ?Sized>(&self, w: &mut W) -> EncResult {
        self.peer.put(w)
    }
}

/// DHT liveness check (`reply == false`) and its answer (`reply == true`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DhtPing {
    /// This is the reply.
    pub reply: bool,
}

impl RelayBody for DhtPing {
    const CMD: RelayCmd = RelayCmd::DHT_PING;
    fn decode_body(body: &[u8]) -> Result<Self> {
        decode_all(body, |r| match r.take_u8()? {
            0 => Ok(DhtPing { reply: false }),
            1 => Ok(DhtPing { reply: true }),
            _ => Err(Error::Invalid("DHT_PING flag must be 0 or 1")),
        })
    }
    fn encode_body<W: Writer + ?Sized>(&self, w: &mut W) -> EncResult {
        w.write_u8(self.reply.into());
        Ok(())
    }
}

/// Ask for the nodes closest to `target`; carries the asker's modulus (seed: "FIND_NODE
/// [ID, modulus]").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhtFindNode {
    /// The id searched for.
    pub target: PeerId,
    /// The asker's RSA modulus.
    pub modulus: Vec<u8>,
}

impl RelayBody for DhtFindNode {
    const CMD: RelayCmd = RelayCmd::DHT_FIND_NODE;
    fn decode_body(body: &[u8]) -> Result<Self> {
        decode_all(body, |r| {
            let target = take_peer_id(r)?;
            let modulus = take_modulus(r)?;
            Ok(DhtFindNode { target, modulus })
        })
    }
    fn encode_body<W: Writer + ?Sized>(&self, w: &mut W) -> EncResult {
        put_peer_id(w, &self.target)?;
        put_modulus(w, &self.modulus)
    }
}

/// What a DHT_FOUND lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FoundKind {
    /// 0: nodes closer to the target (answer to FIND_NODE, or FIND_VALUE without holders).
    CloserNodes = 0,
    /// 1: peers holding the value (answer to FIND_VALUE).
    Holders = 1,
}

/// Answer to FIND_NODE / FIND_VALUE: up to 8 peers, as many as fit in the cell (a long
/// answer is split over several DHT_FOUND cells on the same stream id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhtFound {
    /// What the peers are.
    pub kind: FoundKind,
    /// The peers (at most 8).
    pub peers: Vec<PeerRecord>,
}

impl RelayBody for DhtFound {
    const CMD: RelayCmd = RelayCmd::DHT_FOUND;
    fn decode_body(body: &[u8]) -> Result<Self> {
        decode_all(body, |r| {
            let kind = match r.take_u8()? {
                0 => FoundKind::CloserNodes,
                1 => FoundKind::Holders,
                _ => return Err(Error::Invalid("DHT_FOUND kind must be 0 or 1")),
            };
            let n = usize::from(r.take_u8()?);
            if n > MAX_FOUND_PEERS {
                return Err(Error::BadLength("DHT_FOUND lists more than 8 peers"));
            }
            let mut peers = Vec::with_capacity(n);
            for _ in 0..n {
                peers.push(PeerRecord::take(r)?);
            }
            Ok(DhtFound { kind, peers })
        })
    }
    fn encode_body<W: Writer + ?Sized>(&self, w: &mut W) -> EncResult {
        if self.peers.len() > MAX_FOUND_PEERS {
            return Err(EncodeError::TooLong("DHT_FOUND peers"));
        }
        w.write_u8(self.kind as u8);
        w.write_u8(self.peers.len() as u8);
        for p in &self.peers {
            p.put(w)?;
        }
        Ok(())
    }
}

/// "`peer` holds `hash_name` at `progress`": sent towards the node closest to the name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhtStore {
    /// The file.
    pub hash_name: HashName,
    /// Who holds it.
    pub peer: PeerRecord,
    /// How much of it.
    pub progress: Progress,
}

impl RelayBody for DhtStore {
    const CMD: RelayCmd = RelayCmd::DHT_STORE;
    fn decode_body(body: &[u8]) -> Result<Self> {
        decode_all(body, |r| {
            let hash_name = HashName::take(r)?;
            let peer = PeerRecord::take(r)?;
            let progress = Progress::from_u8(r.take_u8()?)?;
            Ok(DhtStore {
                hash_name,
                peer,
                progress,
            })
        })
    }
    fn encode_body<W: Writer + ?Sized>(&self, w: &mut W) -> EncResult {
        self.hash_name.put(w)?;
        self.peer.put(w)?;
        w.write_u8(self.progress.to_u8());
        Ok(())
    }
}

/// Ask who holds `hash_name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhtFindValue {
    /// The file.
    pub hash_name: HashName,
}

impl RelayBody for DhtFindValue {
    const CMD: RelayCmd = RelayCmd::DHT_FIND_VALUE;
    fn decode_body(body: &[u8]) -> Result<Self> {
        decode_all(body, |r| {
            Ok(DhtFindValue {
                hash_name: HashName::take(r)?,
            })
        })
    }
    fn encode_body<W: Writer + ?Sized>(&self, w: &mut W) -> EncResult {
        self.hash_name.put(w)
    }
}

/// Most hashes one DB_HASHES carries: the arity of the ORDB content trees, chosen so that
/// all the children of one node fit in one relay cell (9 + 15 × 32 = 489 ≤ 498).
pub const MAX_HASHES_PER_MSG: usize = 15;

/// The SHA-256 hashes of the children of one node of a content tree (PROTOCOL.md section
/// 6). With no hashes it is a request for them; with hashes, the answer. Inline buffer:
/// no allocation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DbHashes {
    /// Which tree: 0 for a file, the segment number for a live stream.
    pub tree: u32,
    /// Level of the node whose children these are (1 = parent of chunks).
    pub level: u8,
    /// Index of the node within its level.
    pub node: u32,
    /// The children's hashes, in order (empty = a request).
    pub hashes: heapless::Vec<[u8; 32], MAX_HASHES_PER_MSG>,
}

impl RelayBody for DbHashes {
    const CMD: RelayCmd = RelayCmd::DB_HASHES;
    fn decode_body(body: &[u8]) -> Result<Self> {
        decode_all(body, |r| {
            let tree = r.take_u32()?;
            let level = r.take_u8()?;
            if level == 0 {
                return Err(Error::Invalid("DB_HASHES: level 0 has no children"));
            }
            let node = r.take_u32()?;
            let rest = r.take_rest();
            if rest.len() % 32 != 0 || rest.len() / 32 > MAX_HASHES_PER_MSG {
                return Err(Error::BadLength("DB_HASHES: not 0..=15 hashes of 32 bytes"));
            }
            let mut hashes = heapless::Vec::new();
            for h in rest.chunks_exact(32) {
                let mut a = [0u8; 32];
                a.copy_from_slice(h);
                hashes
                    .push(a)
                    .map_err(|_| Error::BadLength("DB_HASHES: too many hashes"))?;
            }
            Ok(DbHashes {
                tree,
                level,
                node,
                hashes,
            })
        })
    }
    fn encode_body<W: Writer + ?Sized>(&self, w: &mut W) -> EncResult {
        if self.level == 0 {
            return Err(EncodeError::Invalid("DB_HASHES: level 0 has no children"));
        }
        w.write_u32(self.tree);
        w.write_u8(self.level);
        w.write_u32(self.node);
        for h in &self.hashes {
            w.write_all(h);
        }
        Ok(())
    }
}

/// The seeder's signed header of one live-stream segment (PROTOCOL.md section 6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbSegment {
    /// Segment number.
    pub segment: u32,
    /// When the seeder produced it, seconds since the Unix epoch.
    pub timestamp: u32,
    /// Chunks in the segment (1..=225).
    pub n_chunks: u16,
    /// Root of the segment's content tree.
    pub root: [u8; 32],
    /// The seeder's ed25519 signature.
    pub signature: [u8; 64],
}

impl RelayBody for DbSegment {
    const CMD: RelayCmd = RelayCmd::DB_SEGMENT;
    fn decode_body(body: &[u8]) -> Result<Self> {
        decode_all(body, |r| {
            Ok(DbSegment {
                segment: r.take_u32()?,
                timestamp: r.take_u32()?,
                n_chunks: r.take_u16()?,
                root: r.take_array()?,
                signature: r.take_array()?,
            })
        })
    }
    fn encode_body<W: Writer + ?Sized>(&self, w: &mut W) -> EncResult {
        w.write_u32(self.segment);
        w.write_u32(self.timestamp);
        w.write_u16(self.n_chunks);
        w.write_all(&self.root);
        w.write_all(&self.signature);
        Ok(())
    }
}
