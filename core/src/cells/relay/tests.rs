use super::*;
use crate::cells::channel::DestroyReason;
use crate::codec::{EncodeError, Error};
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

fn sid(n: u16) -> Option<StreamId> {
    StreamId::new(n)
}

/// Header + data of a zero-padded encoding, as hex.
fn wire_hex(cell: &RelayCell) -> String {
    let body = cell.encode_zero_padded().unwrap();
    let len = usize::from(u16::from_be_bytes([body[9], body[10]]));
    hex::encode(&body[..HEADER_LEN + len])
}

/// Data bytes of the encoding of `msg`.
fn body_of(msg: impl Into<RelayMsg>) -> Vec<u8> {
    let mut v = Vec::new();
    msg.into().encode_body(&mut v).unwrap();
    v
}

fn peer(ip: IpAddr) -> PeerRecord {
    PeerRecord {
        id: PeerId([0x11; 20]),
        ip,
        port: 9001,
        modulus: vec![0xc5; 128],
        ntor_key: Some([0x4e; 32]),
    }
}

fn hn(s: &str) -> HashName {
    HashName::new(s.as_bytes()).unwrap()
}

/// One example of every message (and a few variants), named for its snapshot.
fn samples() -> Vec<(&'static str, RelayCell)> {
    let v4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
    let v6 = IpAddr::V6("2001:db8::1".parse().unwrap());
    vec![
        (
            "begin_hostname",
            RelayCell::new(
                sid(1),
                Begin {
                    host: Host::Name("www.example.com".into()),
                    port: 80,
                    flags: None,
                },
            ),
        ),
        (
            "begin_ipv4_flags",
            RelayCell::new(
                sid(2),
                Begin {
                    host: Host::Ipv4(Ipv4Addr::new(192, 0, 2, 1)),
                    port: 443,
                    flags: Some(Begin::IPV6_OK),
                },
            ),
        ),
        (
            "begin_ipv6",
            RelayCell::new(
                sid(3),
                Begin {
                    host: Host::Ipv6("2001:db8::1".parse().unwrap()),
                    port: 22,
                    flags: None,
                },
            ),
        ),
        ("begin_dir", RelayCell::new(sid(4), BeginDir)),
        (
            "data",
            RelayCell::new(sid(5), Data::new(b"GET / HTTP/1.0\r\n\r\n").unwrap()),
        ),
        (
            "end_done",
            RelayCell::new(sid(5), End::new(EndReason::DONE)),
        ),
        (
            "end_exitpolicy_ipv4",
            RelayCell::new(
                sid(5),
                End {
                    reason: EndReason::EXITPOLICY,
                    exit_policy_addr: Some((v4, 3600)),
                },
            ),
        ),
        (
            "end_exitpolicy_ipv6",
            RelayCell::new(
                sid(5),
                End {
                    reason: EndReason::EXITPOLICY,
                    exit_policy_addr: Some((v6, 60)),
                },
            ),
        ),
        (
            "connected_empty",
            RelayCell::new(sid(1), Connected::default()),
        ),
        (
            "connected_ipv4",
            RelayCell::new(
                sid(1),
                Connected {
                    addr: Some((v4, 300)),
                },
            ),
        ),
        (
            "connected_ipv6",
            RelayCell::new(
                sid(1),
                Connected {
                    addr: Some((v6, 300)),
                },
            ),
        ),
        ("sendme_v0_circuit", RelayCell::new(None, Sendme::V0)),
        (
            "sendme_v1_circuit",
            RelayCell::new(
                None,
                Sendme::V1 {
                    tag: *b"0123456789abcdefghij",
                },
            ),
        ),
        ("sendme_v0_stream", RelayCell::new(sid(9), Sendme::V0)),
        (
            "extend2",
            RelayCell::new(
                None,
                Extend2 {
                    link_specs: vec![
                        LinkSpec::Ipv4 {
                            addr: Ipv4Addr::new(10, 0, 0, 1),
                            port: 9001,
                        },
                        LinkSpec::Ipv6 {
                            addr: "2001:db8::2".parse().unwrap(),
                            port: 9002,
                        },
                        LinkSpec::RsaId([0xaa; 20]),
                        LinkSpec::Ed25519Id([0xbb; 32]),
                        LinkSpec::Unrecognized {
                            ty: 9,
                            body: vec![1, 2, 3],
                        },
                    ],
                    handshake_type: HandshakeType::NTOR,
                    hdata: vec![0xcc; 84],
                },
            ),
        ),
        (
            "extended2",
            RelayCell::new(
                None,
                Extended2 {
                    hdata: vec![0xdd; 64],
                },
            ),
        ),
        ("truncate", RelayCell::new(None, Truncate)),
        (
            "truncated",
            RelayCell::new(
                None,
                Truncated {
                    reason: DestroyReason(8),
                },
            ),
        ),
        ("drop", RelayCell::new(None, DropMsg)),
        (
            "resolve",
            RelayCell::new(
                sid(7),
                Resolve {
                    hostname: "torproject.org".into(),
                },
            ),
        ),
        (
            "resolved",
            RelayCell::new(
                sid(7),
                Resolved {
                    answers: vec![
                        ResolvedAnswer {
                            value: ResolvedValue::Ipv4(Ipv4Addr::new(192, 0, 2, 9)),
                            ttl: 60,
                        },
                        ResolvedAnswer {
                            value: ResolvedValue::Ipv6("2001:db8::9".parse().unwrap()),
                            ttl: 60,
                        },
                        ResolvedAnswer {
                            value: ResolvedValue::Hostname("example.org".into()),
                            ttl: 10,
                        },
                        ResolvedAnswer {
                            value: ResolvedValue::TransientError(vec![]),
                            ttl: 0,
                        },
                        ResolvedAnswer {
                            value: ResolvedValue::NontransientError(vec![]),
                            ttl: 0,
                        },
                        ResolvedAnswer {
                            value: ResolvedValue::Unrecognized {
                                ty: 0x42,
                                value: vec![7],
                            },
                            ttl: 1,
                        },
                    ],
                },
            ),
        ),
        (
            "db_info",
            RelayCell::new(
                None,
                DbInfo {
                    hash_name: hn("abcd"),
                    progress: Progress::Half,
                    facilitator: false,
                    have: None,
                },
            ),
        ),
        (
            "db_info_have",
            RelayCell::new(
                None,
                DbInfo {
                    hash_name: hn("abcd"),
                    progress: Progress::Quarter,
                    facilitator: false,
                    have: Some(0x0102_0304),
                },
            ),
        ),
        (
            "db_info_facilitator",
            RelayCell::new(
                sid(3),
                DbInfo {
                    hash_name: hn("abcd"),
                    progress: Progress::Full,
                    facilitator: true,
                    have: None,
                },
            ),
        ),
        (
            "db_query_info",
            RelayCell::new(
                sid(10),
                DbQuery {
                    hash_name: hn("abcd"),
                    chunk: 0,
                    nb_chunks: 0,
                    counter: 0,
                },
            ),
        ),
        (
            "db_query_chunks",
            RelayCell::new(
                sid(10),
                DbQuery {
                    hash_name: hn("abcd"),
                    chunk: 0x0001_0203,
                    nb_chunks: 200,
                    counter: 2,
                },
            ),
        ),
        (
            "db_connected",
            RelayCell::new(
                sid(10),
                DbConnected {
                    size: 1_000_000,
                    mime_type: "video/webm".into(),
                    public_key: vec![0x30; 40],
                    trailer: vec![],
                },
            ),
        ),
        (
            "db_data",
            RelayCell::new(
                sid(10),
                DbData::new(
                    1,
                    ChunkSignature::new(0x5f00_0000, [1, 2, 3, 4]),
                    b"chunk bytes",
                )
                .unwrap(),
            ),
        ),
        (
            "db_end",
            RelayCell::new(
                sid(10),
                DbEnd {
                    reason: DbEndReason::DESTROYED,
                },
            ),
        ),
        (
            "db_sendme",
            RelayCell::new(sid(10), DbSendme { chunks: 50 }),
        ),
        (
            "db_find_peer",
            RelayCell::new(sid(1), DbFindPeer { peer: peer(v4) }),
        ),
        (
            "db_found_peer",
            RelayCell::new(sid(1), DbFoundPeer { peer: peer(v6) }),
        ),
        ("dht_ping", RelayCell::new(sid(2), DhtPing { reply: false })),
        ("dht_pong", RelayCell::new(sid(2), DhtPing { reply: true })),
        (
            "dht_find_node",
            RelayCell::new(
                sid(3),
                DhtFindNode {
                    target: PeerId([0x22; 20]),
                    modulus: vec![0xc5; 128],
                },
            ),
        ),
        (
            "dht_found",
            RelayCell::new(
                sid(3),
                DhtFound {
                    kind: FoundKind::CloserNodes,
                    peers: vec![
                        PeerRecord {
                            modulus: vec![1; 16],
                            ..peer(v4)
                        },
                        PeerRecord {
                            modulus: vec![2; 16],
                            ntor_key: None,
                            ..peer(v6)
                        },
                    ],
                },
            ),
        ),
        (
            "dht_store",
            RelayCell::new(
                None,
                DhtStore {
                    hash_name: hn("abcd"),
                    peer: peer(v4),
                    progress: Progress::Quarter,
                },
            ),
        ),
        (
            "dht_find_value",
            RelayCell::new(
                sid(4),
                DhtFindValue {
                    hash_name: hn("abcd"),
                },
            ),
        ),
        (
            "db_hashes",
            RelayCell::new(
                sid(10),
                DbHashes {
                    tree: 0,
                    level: 1,
                    node: 7,
                    hashes: heapless::Vec::from_slice(&[[0xaa; 32], [0xbb; 32]]).unwrap(),
                },
            ),
        ),
        (
            "db_hashes_request",
            RelayCell::new(
                sid(10),
                DbHashes {
                    tree: 3,
                    level: 2,
                    node: 0,
                    hashes: heapless::Vec::new(),
                },
            ),
        ),
        (
            "db_segment",
            RelayCell::new(
                sid(10),
                DbSegment {
                    segment: 42,
                    timestamp: 0x6500_0000,
                    n_chunks: 64,
                    root: [0xcc; 32],
                    signature: [0xdd; 64],
                },
            ),
        ),
        (
            "peer_signal_offer_single",
            RelayCell::new(
                None,
                PeerSignal {
                    kind: SignalKind::OFFER,
                    session: 0x0102_0304,
                    to: PeerId([0xbb; 20]),
                    from: PeerId([0xaa; 20]),
                    total: 9,
                    offset: 0,
                    data: heapless::Vec::from_slice(b"v=0\r\no=- ").unwrap(),
                },
            ),
        ),
        (
            "peer_signal_answer_last_fragment",
            RelayCell::new(
                None,
                PeerSignal {
                    kind: SignalKind::ANSWER,
                    session: 7,
                    to: PeerId([0xaa; 20]),
                    from: PeerId([0xbb; 20]),
                    total: 600,
                    offset: MAX_SIGNAL_FRAGMENT as u16,
                    data: heapless::Vec::from_slice(&[b'a'; 600 - MAX_SIGNAL_FRAGMENT]).unwrap(),
                },
            ),
        ),
        (
            "peer_signal_refused",
            RelayCell::new(
                None,
                PeerSignal {
                    kind: SignalKind::REFUSED,
                    session: 0x0102_0304,
                    to: PeerId([0xaa; 20]),
                    from: PeerId([0xbb; 20]),
                    total: 1,
                    offset: 0,
                    data: heapless::Vec::from_slice(&SignalRefusal::RATE_LIMITED.encode()).unwrap(),
                },
            ),
        ),
        (
            "unrecognized",
            RelayCell::new(
                sid(1),
                RelayMsg::Unrecognized {
                    cmd: RelayCmd(200),
                    body: vec![1, 2, 3],
                },
            ),
        ),
        (
            "unrecognized_known_tor_cmd",
            RelayCell::new(
                None,
                RelayMsg::Unrecognized {
                    cmd: RelayCmd::INTRODUCE1,
                    body: vec![0; 8],
                },
            ),
        ),
    ]
}

#[test]
fn every_message_snapshot_and_roundtrip() {
    for (name, cell) in samples() {
        insta::assert_snapshot!(name, wire_hex(&cell));
        let body = cell.encode_zero_padded().unwrap();
        assert_eq!(RelayCell::decode(&body).unwrap(), cell, "{name}");
    }
}

#[test]
fn every_peersm_command_is_numbered_as_designed() {
    let want = [
        (RelayCmd::DB_INFO, 80),
        (RelayCmd::DB_QUERY, 81),
        (RelayCmd::DB_CONNECTED, 82),
        (RelayCmd::DB_DATA, 83),
        (RelayCmd::DB_END, 84),
        (RelayCmd::DB_SENDME, 85),
        (RelayCmd::DB_FIND_PEER, 86),
        (RelayCmd::DB_FOUND_PEER, 87),
        (RelayCmd::DHT_PING, 88),
        (RelayCmd::DHT_FIND_NODE, 89),
        (RelayCmd::DHT_FOUND, 90),
        (RelayCmd::DHT_STORE, 91),
        (RelayCmd::DHT_FIND_VALUE, 92),
        (RelayCmd::DB_HASHES, 93),
        (RelayCmd::DB_SEGMENT, 94),
        (RelayCmd::PEER_SIGNAL, 95),
    ];
    for (c, n) in want {
        assert_eq!(c.0, n);
        assert!(RelayMsg::is_parsed(c), "{c}");
    }
    assert_eq!(RelayCmd::EXTENDED2.0, 15);
    assert_eq!(RelayCmd(15).to_string(), "EXTENDED2");
    assert_eq!(RelayCmd(250).to_string(), "RelayCmd(250)");
}

#[test]
fn header_layout() {
    let cell = RelayCell::new(sid(0x1234), Data::new(b"hi").unwrap());
    let b = cell.encode_zero_padded().unwrap();
    assert_eq!(b[CMD_OFFSET], 2);
    assert_eq!(&b[RECOGNIZED_RANGE], &[0, 0]);
    assert_eq!(&b[STREAM_ID_RANGE], &[0x12, 0x34]);
    assert_eq!(&b[DIGEST_RANGE], &[0; 4]);
    assert_eq!(&b[LENGTH_RANGE], &[0, 2]);
    assert_eq!(&b[DATA_OFFSET..DATA_OFFSET + 2], b"hi");
    assert!(b[DATA_OFFSET + 2..].iter().all(|&x| x == 0));
    assert_eq!(MAX_DATA_LEN, 498);
    assert_eq!(MAX_CHUNK_DATA_LEN, 486);
}

#[test]
fn decode_ignores_digest_but_checks_recognized_and_length() {
    let cell = RelayCell::new(sid(1), Data::new(b"x").unwrap());
    let mut b = cell.encode_zero_padded().unwrap();
    b[DIGEST_RANGE].copy_from_slice(&[9, 9, 9, 9]);
    assert_eq!(RelayCell::decode(&b).unwrap(), cell);
    let mut bad = b;
    bad[2] = 1;
    assert!(RelayCell::decode(&bad).is_err());
    let mut bad = b;
    bad[LENGTH_RANGE].copy_from_slice(&499u16.to_be_bytes());
    assert_eq!(
        RelayCell::decode(&bad),
        Err(Error::BadLength("relay cell length above 498"))
    );
    let mut ok = b;
    ok[LENGTH_RANGE].copy_from_slice(&498u16.to_be_bytes());
    let RelayMsg::Data(d) = RelayCell::decode(&ok).unwrap().msg else {
        panic!()
    };
    assert_eq!(d.data.len(), 498);
}

#[test]
fn padding_is_four_zeros_then_rng_bytes() {
    let cell = RelayCell::new(sid(1), Data::new(&[7; 100]).unwrap());
    let b = cell.encode(&mut ChaCha20Rng::from_seed([3; 32])).unwrap();
    let pad = DATA_OFFSET + 100;
    assert_eq!(&b[pad..pad + 4], &[0; 4]);
    let mut want = [0u8; BODY_LEN - (DATA_OFFSET + 104)];
    ChaCha20Rng::from_seed([3; 32]).fill_bytes(&mut want);
    assert_eq!(&b[pad + 4..], &want[..]);
    assert_eq!(RelayCell::decode(&b).unwrap(), cell);

    // Fewer than four padding bytes: all zero, and the rng is not needed.
    for n in [495, 496, 498] {
        let cell = RelayCell::new(sid(1), Data::new(&vec![7; n]).unwrap());
        let b = cell.encode(&mut ChaCha20Rng::from_seed([3; 32])).unwrap();
        assert!(b[DATA_OFFSET + n..].iter().all(|&x| x == 0), "{n}");
    }

    // The raw encoder pads the same way.
    let raw = RawRelayCell {
        cmd: RelayCmd::DATA,
        stream_id: sid(1),
        data: &[7; 100],
    };
    assert_eq!(raw.encode(&mut ChaCha20Rng::from_seed([3; 32])).unwrap(), b);
    assert_eq!(RawRelayCell::decode(&b).unwrap(), raw);
}

#[test]
fn too_long_data_is_refused() {
    assert_eq!(
        Data::new(&[0; 499]),
        Err(EncodeError::TooLong("DATA payload"))
    );
    assert!(DbData::new(0, ChunkSignature::default(), &[0; 487]).is_err());
    let cell = RelayCell::new(
        None,
        Extended2 {
            hdata: vec![0; 497],
        },
    );
    assert_eq!(
        cell.encode_zero_padded(),
        Err(EncodeError::TooLong("relay cell data"))
    );
}

#[test]
fn stream_id_rules() {
    assert!(
        RelayCell::new(None, Data::default())
            .encode_zero_padded()
            .is_err()
    );
    assert!(
        RelayCell::new(sid(1), Truncate)
            .encode_zero_padded()
            .is_err()
    );
    assert!(
        RelayCell::new(sid(1), Sendme::V0)
            .encode_zero_padded()
            .is_ok()
    );
    // A DATA cell with stream id 0 on the wire is refused.
    let mut b = RelayCell::new(sid(1), Data::default())
        .encode_zero_padded()
        .unwrap();
    b[STREAM_ID_RANGE].copy_from_slice(&[0, 0]);
    assert_eq!(
        RelayCell::decode(&b),
        Err(Error::Invalid("relay command needs a stream id"))
    );
    assert_eq!(StreamId::new(0), None);
    assert_eq!(StreamId::to_wire(None), 0);
}

#[test]
fn unknown_commands_round_trip_and_known_ones_cannot_hide() {
    let mut b = [0u8; BODY_LEN];
    b[0] = 77;
    b[STREAM_ID_RANGE].copy_from_slice(&[0, 5]);
    b[LENGTH_RANGE].copy_from_slice(&[0, 3]);
    b[11..14].copy_from_slice(&[1, 2, 3]);
    let c = RelayCell::decode(&b).unwrap();
    assert_eq!(
        c.msg,
        RelayMsg::Unrecognized {
            cmd: RelayCmd(77),
            body: vec![1, 2, 3]
        }
    );
    assert_eq!(c.encode_zero_padded().unwrap(), b);
    let hidden = RelayMsg::Unrecognized {
        cmd: RelayCmd::DATA,
        body: vec![],
    };
    assert!(RelayCell::new(sid(1), hidden).encode_zero_padded().is_err());
}

// ---- Tor messages: spec forms ----

#[test]
fn begin_spec_forms() {
    let b = body_of(Begin {
        host: Host::Name("www.example.com".into()),
        port: 80,
        flags: None,
    });
    assert_eq!(b, b"www.example.com:80\0");
    let b = body_of(Begin {
        host: Host::Ipv6("::1".parse().unwrap()),
        port: 443,
        flags: Some(Begin::IPV6_OK | Begin::IPV6_PREFERRED),
    });
    assert_eq!(b, b"[::1]:443\0\0\0\0\x05");
    let m = Begin::decode_body(b"192.0.2.1:8080\0").unwrap();
    assert_eq!(m.host, Host::Ipv4(Ipv4Addr::new(192, 0, 2, 1)));
    assert_eq!(m.port, 8080);
    for bad in [
        &b"example.com:80"[..],
        b"example.com\0",
        b":80\0",
        b"a:+80\0",
        b"a:65536\0",
        b"[x]:1\0",
    ] {
        assert!(Begin::decode_body(bad).is_err(), "{bad:?}");
    }
    // Bytes after FLAGS are ignored, as Tor does; fewer than four mean "no flags".
    assert_eq!(
        Begin::decode_body(b"a:1\0\0\0\0\x01zz").unwrap().flags,
        Some(1)
    );
    assert_eq!(Begin::decode_body(b"a:1\0\0\0").unwrap().flags, None);
}

#[test]
fn end_and_connected_spec_forms() {
    assert_eq!(End::decode_body(&[]).unwrap(), End::new(EndReason::MISC));
    let e = End::decode_body(&[4, 192, 0, 2, 1, 0, 0, 0, 60]).unwrap();
    assert_eq!(
        e.exit_policy_addr,
        Some((IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 60))
    );
    assert_eq!(
        End::decode_body(&[6, 1, 2]).unwrap(),
        End::new(EndReason::DONE)
    );

    let c = Connected::decode_body(&[10, 0, 0, 1, 0, 0, 1, 0]).unwrap();
    assert_eq!(c.addr, Some((IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 256)));
    let mut v6 = vec![0, 0, 0, 0, 6];
    v6.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
    v6.extend_from_slice(&[0, 0, 0, 5]);
    assert_eq!(v6.len(), 25);
    let c = Connected::decode_body(&v6).unwrap();
    assert_eq!(c.addr, Some((IpAddr::V6(Ipv6Addr::LOCALHOST), 5)));
    assert!(Connected::decode_body(&[0, 0, 0, 0, 4]).is_err());
    assert!(Connected::decode_body(&[1, 2, 3]).is_err());
    let zero = Connected {
        addr: Some((IpAddr::V4(Ipv4Addr::UNSPECIFIED), 1)),
    };
    assert!(RelayCell::new(sid(1), zero).encode_zero_padded().is_err());
}

#[test]
fn sendme_versions() {
    let mut v1 = vec![1, 0, 20];
    v1.extend_from_slice(&[0xab; 20]);
    assert_eq!(
        Sendme::decode_body(&v1).unwrap(),
        Sendme::V1 { tag: [0xab; 20] }
    );
    assert_eq!(body_of(Sendme::V1 { tag: [0xab; 20] }), v1);
    assert!(Sendme::decode_body(&[1, 0, 19, 0]).is_err());
    let u = Sendme::decode_body(&[7, 0, 2, 9, 9]).unwrap();
    assert_eq!(
        u,
        Sendme::Unrecognized {
            version: 7,
            data: vec![9, 9]
        }
    );
    assert_eq!(body_of(u), [7, 0, 2, 9, 9]);
    assert_eq!(Sendme::decode_body(&[0, 0, 0]).unwrap(), Sendme::V0);
}

#[test]
fn extend2_spec_form() {
    // NSPEC=2: IPv4 127.0.0.1:9001, legacy id; HTYPE=2 (ntor); HLEN=3.
    let mut b = vec![2, 0, 6, 127, 0, 0, 1, 0x23, 0x29, 2, 20];
    b.extend_from_slice(&[0x5a; 20]);
    b.extend_from_slice(&[0, 2, 0, 3, 1, 2, 3]);
    let m = Extend2::decode_body(&b).unwrap();
    assert_eq!(
        m.link_specs,
        [
            LinkSpec::Ipv4 {
                addr: Ipv4Addr::LOCALHOST,
                port: 9001
            },
            LinkSpec::RsaId([0x5a; 20])
        ]
    );
    assert_eq!(m.handshake_type, HandshakeType::NTOR);
    assert_eq!(m.hdata, [1, 2, 3]);
    assert_eq!(body_of(m), b);
    // A known specifier type with the wrong length is malformed.
    assert!(Extend2::decode_body(&[1, 0, 5, 1, 2, 3, 4, 5, 0, 2, 0, 0]).is_err());
}

#[test]
fn resolved_rejects_bad_address_lengths() {
    assert!(Resolved::decode_body(&[4, 3, 1, 2, 3, 0, 0, 0, 0]).is_err());
    assert!(Resolved::decode_body(&[4, 4, 1, 2, 3, 4, 0, 0]).is_err());
    assert_eq!(Resolved::decode_body(&[]).unwrap(), Resolved::default());
}

// ---- Peersm messages: the seed's layouts ----

#[test]
fn db_query_seed_example() {
    // The seed's first GET, 'abcd' 1 0 0: chunk 1, nb chunks 0 (ask for the file info).
    let q = DbQuery {
        hash_name: hn("abcd"),
        chunk: 1,
        nb_chunks: 0,
        counter: 0,
    };
    assert_eq!(hex::encode(body_of(q.clone())), "04616263640101000000");
    assert_eq!(DbQuery::decode_body(&body_of(q.clone())).unwrap(), q);
}

#[test]
fn variable_length_integers() {
    let enc = |v| {
        hex::encode(body_of(DbQuery {
            hash_name: hn("a"),
            chunk: v,
            nb_chunks: 1,
            counter: 0,
        }))
    };
    // [len 1][a][len][minimal big-endian, empty for 0][nb 2B][counter]
    assert_eq!(enc(0), "016100000100");
    assert_eq!(enc(255), "016101ff000100");
    assert_eq!(enc(256), "0161020100000100");
    assert_eq!(enc(u64::MAX), "016108ffffffffffffffff000100");
    // Decoding accepts 0..=8 bytes and non-minimal forms; 9 bytes is an error.
    let q = |chunk: &[u8]| {
        let mut b = vec![1, b'a', chunk.len() as u8];
        b.extend_from_slice(chunk);
        b.extend_from_slice(&[0, 1, 0]);
        DbQuery::decode_body(&b)
    };
    assert_eq!(q(&[]).unwrap().chunk, 0);
    assert_eq!(q(&[0, 0, 1]).unwrap().chunk, 1);
    assert_eq!(q(&[0xff; 8]).unwrap().chunk, u64::MAX);
    assert!(q(&[0; 9]).is_err());
    // Counter above 5 and empty hash_name are refused.
    assert!(DbQuery::decode_body(&[1, b'a', 1, 0, 0, 1, 6]).is_err());
    assert!(DbQuery::decode_body(&[0, 1, 0, 0, 1, 0]).is_err());
}

#[test]
fn db_connected_keeps_trailer() {
    let c = DbConnected::decode_body(&[1, 9, 1, b'x', 0, 1, 0xaa, 0xde, 0xad]).unwrap();
    assert_eq!(c.size, 9);
    assert_eq!(c.mime_type, "x");
    assert_eq!(c.public_key, [0xaa]);
    assert_eq!(c.trailer, [0xde, 0xad]);
    assert_eq!(body_of(c), [1, 9, 1, b'x', 0, 1, 0xaa, 0xde, 0xad]);
}

#[test]
fn db_data_layout() {
    let d = DbData::new(7, ChunkSignature::new(0x0102_0304, *b"sigs"), b"abc").unwrap();
    assert_eq!(body_of(d.clone()), b"\0\0\0\x07\x01\x02\x03\x04sigsabc");
    assert_eq!(d.signature.timestamp(), 0x0102_0304);
    assert_eq!(&d.signature.sig_prefix(), b"sigs");
    assert!(DbData::decode_body(&[0; 11]).is_err());
    assert_eq!(DbData::decode_body(&[0; 12]).unwrap().data.len(), 0);
}

#[test]
fn db_hashes_limits() {
    // 15 hashes fit in one cell; 16 do not decode; a partial hash is malformed; level 0 is
    // refused both ways.
    let mut body = vec![0, 0, 0, 0, 1, 0, 0, 0, 0];
    body.extend_from_slice(&[7u8; 15 * 32]);
    assert_eq!(body.len(), 489);
    let m = DbHashes::decode_body(&body).unwrap();
    assert_eq!(m.hashes.len(), 15);
    body.extend_from_slice(&[7u8; 32]);
    assert!(DbHashes::decode_body(&body).is_err());
    assert!(DbHashes::decode_body(&[0, 0, 0, 0, 1, 0, 0, 0, 0, 1]).is_err());
    assert!(DbHashes::decode_body(&[0, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
    let bad = DbHashes {
        level: 0,
        ..DbHashes::default()
    };
    assert!(bad.encode_body(&mut Vec::new()).is_err());
    assert_eq!(
        DbSegment::decode_body(&[0; 106]).unwrap().n_chunks,
        0,
        "DB_SEGMENT is 106 bytes"
    );
    assert!(DbSegment::decode_body(&[0; 105]).is_err());
}

#[test]
fn db_info_facilitator_byte() {
    let i = DbInfo::decode_body(b"\x04abcd\x03").unwrap();
    assert_eq!((i.progress, i.facilitator), (Progress::Full, false));
    assert_eq!(i.progress.percent(), 100);
    assert!(
        DbInfo::decode_body(b"\x04abcd\x03\x01")
            .unwrap()
            .facilitator
    );
    assert!(
        !DbInfo::decode_body(b"\x04abcd\x03\x00")
            .unwrap()
            .facilitator
    );
    assert!(DbInfo::decode_body(b"\x04abcd\x03\x02").is_err());
    assert!(DbInfo::decode_body(b"\x04abcd\x04").is_err());
    assert!(DbInfo::decode_body(b"\x04abcd\x03\x01\x01").is_err());
}

#[test]
fn peer_record_lengths() {
    let good = body_of(DbFindPeer {
        peer: peer(IpAddr::V4(Ipv4Addr::LOCALHOST)),
    });
    assert_eq!(&good[..1], &[20]);
    assert_eq!(&good[21..28], &[4, 127, 0, 0, 1, 2, 0x23]);
    assert_eq!(good[28..31], [0x29, 128, 0xc5]);
    assert_eq!(good.len(), 1 + 20 + 1 + 4 + 1 + 2 + 1 + 128 + 1 + 32);
    assert_eq!(good[158..160], [32, 0x4e]);
    // The ntor key length is required: 0 (unknown) decodes, other than 0/32 or absent not.
    let mut b = good[..158].to_vec();
    assert!(DbFindPeer::decode_body(&b).is_err());
    b.push(0);
    assert_eq!(DbFindPeer::decode_body(&b).unwrap().peer.ntor_key, None);
    b[158] = 31;
    b.extend_from_slice(&[0; 31]);
    assert!(DbFindPeer::decode_body(&b).is_err());
    // ID of 19 bytes, IP of 5 bytes, port of 3 bytes, empty modulus: all refused.
    let mut b = good.clone();
    b[0] = 19;
    assert!(DbFindPeer::decode_body(&b).is_err());
    let mut b = good.clone();
    b[21] = 5;
    assert!(DbFindPeer::decode_body(&b).is_err());
    let mut b = good.clone();
    b.truncate(29);
    b.push(0);
    assert!(DbFindPeer::decode_body(&b).is_err());
    let ipv6 = body_of(DbFoundPeer {
        peer: peer(IpAddr::V6(Ipv6Addr::LOCALHOST)),
    });
    assert_eq!(ipv6[21], 16);
}

#[test]
fn dht_found_limits() {
    // Eight short keyless records fit one cell (the count limit is what refuses nine).
    let p = PeerRecord {
        modulus: vec![1],
        ntor_key: None,
        ..peer(IpAddr::V4(Ipv4Addr::LOCALHOST))
    };
    let nine = DhtFound {
        kind: FoundKind::Holders,
        peers: vec![p.clone(); 9],
    };
    assert!(RelayCell::new(sid(1), nine).encode_zero_padded().is_err());
    let eight = DhtFound {
        kind: FoundKind::Holders,
        peers: vec![p.clone(); 8],
    };
    let c = RelayCell::new(sid(1), eight);
    assert_eq!(
        RelayCell::decode(&c.encode_zero_padded().unwrap()).unwrap(),
        c
    );
    // With 128-byte moduli and ntor keys only two IPv4 records fit in one cell (three
    // without the keys).
    let big = peer(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let two = DhtFound {
        kind: FoundKind::CloserNodes,
        peers: vec![big.clone(); 2],
    };
    assert!(RelayCell::new(sid(1), two).encode_zero_padded().is_ok());
    let three = DhtFound {
        kind: FoundKind::CloserNodes,
        peers: vec![big.clone(); 3],
    };
    assert!(RelayCell::new(sid(1), three).encode_zero_padded().is_err());
    let keyless = PeerRecord {
        ntor_key: None,
        ..big
    };
    let three = DhtFound {
        kind: FoundKind::CloserNodes,
        peers: vec![keyless; 3],
    };
    assert!(RelayCell::new(sid(1), three).encode_zero_padded().is_ok());
    assert!(DhtFound::decode_body(&[2, 0]).is_err());
    assert!(DhtFound::decode_body(&[0, 9]).is_err());
    assert!(DhtPing::decode_body(&[2]).is_err());
}

// ---- properties ----

const ALL_CMDS: &[u8] = &[
    1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13, 14, 15, 80, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91,
    92, 93, 94, 95, 6, 7, 32, 43, 200,
];

#[test]
fn fuzz_relay_cell_decode_never_panics() {
    bolero::check!().for_each(|input: &[u8]| {
        let mut body = [0u8; BODY_LEN];
        let n = input.len().min(BODY_LEN);
        body[..n].copy_from_slice(&input[..n]);
        let _ = RelayCell::decode(&body);
        // Steer most inputs past the header checks: recognized 0, a plausible length, a
        // known command.
        body[1] = 0;
        body[2] = 0;
        body[0] = ALL_CMDS[usize::from(body[0]) % ALL_CMDS.len()];
        let len = (u16::from_be_bytes([body[9], body[10]]) % 499).to_be_bytes();
        body[9..11].copy_from_slice(&len);
        if let Ok(cell) = RelayCell::decode(&body) {
            let again = cell
                .encode_zero_padded()
                .expect("a decoded cell re-encodes");
            assert_eq!(RelayCell::decode(&again).unwrap(), cell);
        }
    });
}

#[test]
fn fuzz_message_bodies_decode_encode_decode() {
    bolero::check!().for_each(|input: &[u8]| {
        let Some((&c, body)) = input.split_first() else {
            return;
        };
        let cmd = RelayCmd(ALL_CMDS[usize::from(c) % ALL_CMDS.len()]);
        let body = &body[..body.len().min(MAX_DATA_LEN)];
        if let Ok(msg) = RelayMsg::decode(cmd, body) {
            assert_eq!(msg.cmd(), cmd);
            let mut enc = Vec::new();
            msg.encode_body(&mut enc)
                .expect("a decoded message re-encodes");
            assert_eq!(RelayMsg::decode(cmd, &enc).unwrap(), msg);
            // Our encoding is a canonical form: re-encoding it changes nothing.
            let mut enc2 = Vec::new();
            RelayMsg::decode(cmd, &enc)
                .unwrap()
                .encode_body(&mut enc2)
                .unwrap();
            assert_eq!(enc2, enc);
            // Canonical where we promise it: Peersm messages other than those with
            // variable-length integers re-encode byte for byte.
            if matches!(cmd.0, 83..=95) || cmd.0 == 200 {
                assert_eq!(enc, body, "{cmd}");
            }
        }
    });
}

#[test]
fn peer_signal_layout_and_limits() {
    assert_eq!(SIGNAL_HEADER_LEN, 49);
    assert_eq!(MAX_SIGNAL_FRAGMENT, 449);
    let ok = |total: u16, offset: u16, len: usize| {
        let mut b = vec![1u8];
        b.extend_from_slice(&9u32.to_be_bytes());
        b.extend_from_slice(&[0xbb; 20]);
        b.extend_from_slice(&[0xaa; 20]);
        b.extend_from_slice(&total.to_be_bytes());
        b.extend_from_slice(&offset.to_be_bytes());
        b.extend(core::iter::repeat_n(b'x', len));
        RelayMsg::decode(RelayCmd::PEER_SIGNAL, &b).is_ok()
    };
    assert!(ok(1, 0, 1));
    assert!(ok(8192, 8192 - 449, 449));
    assert!(!ok(0, 0, 1), "total 0");
    assert!(!ok(8193, 0, 1), "total above the limit");
    assert!(!ok(10, 0, 0), "empty fragment");
    assert!(!ok(10, 5, 6), "past total");
    assert!(!ok(1000, 0, 450), "fragment above 449");
    assert!(
        RelayMsg::decode(RelayCmd::PEER_SIGNAL, &[0; 48]).is_err(),
        "short header"
    );
    // A circuit-level command: stream 0 only.
    assert_eq!(
        RelayCmd::PEER_SIGNAL.stream_id_rule(),
        StreamIdRule::Forbidden
    );
}

#[test]
fn peer_signal_fragments_cover_the_sdp_in_order() {
    let sdp: Vec<u8> = (0..1500u32).map(|i| i as u8).collect();
    let frags: Vec<PeerSignal> =
        PeerSignal::fragments(SignalKind::OFFER, 3, PeerId([2; 20]), PeerId([1; 20]), &sdp)
            .unwrap()
            .collect();
    assert_eq!(frags.len(), 4);
    let mut whole = Vec::new();
    for (i, f) in frags.iter().enumerate() {
        assert_eq!(usize::from(f.offset), whole.len());
        assert_eq!(f.is_last(), i == 3);
        whole.extend_from_slice(&f.data);
        let cell = RelayCell::new(None, f.clone());
        let body = cell.encode_zero_padded().unwrap();
        assert_eq!(RelayCell::decode(&body).unwrap(), cell);
    }
    assert_eq!(whole, sdp);
    assert!(
        PeerSignal::fragments(SignalKind::OFFER, 0, PeerId([0; 20]), PeerId([0; 20]), &[]).is_err()
    );
    assert!(
        PeerSignal::fragments(
            SignalKind::OFFER,
            0,
            PeerId([0; 20]),
            PeerId([0; 20]),
            &[0; MAX_SIGNAL_LEN + 1]
        )
        .is_err()
    );
}

#[test]
fn fuzz_signal_refusal_decode() {
    bolero::check!().for_each(|input: &[u8]| match SignalRefusal::decode(input) {
        Ok(r) => {
            assert_eq!(input.len(), 1);
            assert_eq!(r.encode(), [input[0]]);
            let _ = r.name();
        }
        Err(_) => assert_ne!(input.len(), 1),
    });
}

#[test]
fn progress_is_the_quarter_reached() {
    assert_eq!(Progress::of(0, 100), None);
    assert_eq!(Progress::of(24, 100), None);
    assert_eq!(Progress::of(25, 100), Some(Progress::Quarter));
    assert_eq!(Progress::of(74, 100), Some(Progress::Half));
    assert_eq!(Progress::of(99, 100), Some(Progress::ThreeQuarters));
    assert_eq!(Progress::of(100, 100), Some(Progress::Full));
    // More than the total, and an empty file, stay in range.
    assert_eq!(Progress::of(500, 100), Some(Progress::Full));
    assert_eq!(Progress::of(0, 0), None);
}
