use super::*;
use crate::codec::{EncodeError, Error};
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fn cid(v: u32) -> Option<CircId> {
    CircId::new(v)
}

fn v(version: u16) -> ChannelCodec {
    ChannelCodec::new(version).unwrap()
}

fn pattern<const N: usize>(seed: u8) -> [u8; N] {
    let mut a = [0u8; N];
    for (i, b) in a.iter_mut().enumerate() {
        *b = seed.wrapping_add(i as u8);
    }
    a
}

/// One cell of every message, with a name for its snapshot.
fn samples() -> Vec<(&'static str, ChanCell)> {
    vec![
        ("padding", ChanCell::new(None, Padding)),
        ("vpadding", ChanCell::new(None, Vpadding { len: 5 })),
        (
            "versions",
            ChanCell::new(
                None,
                Versions {
                    versions: vec![3, 4, 5],
                },
            ),
        ),
        (
            "certs",
            ChanCell::new(
                None,
                Certs {
                    entries: vec![
                        CertEntry {
                            cert_type: CertType::ED_ID_SIGNING,
                            body: vec![1, 2, 3],
                        },
                        CertEntry {
                            cert_type: CertType::RSA_ED_CROSSCERT,
                            body: vec![0xaa; 4],
                        },
                        CertEntry {
                            cert_type: CertType(99),
                            body: vec![],
                        },
                    ],
                },
            ),
        ),
        (
            "auth_challenge",
            ChanCell::new(
                None,
                AuthChallenge {
                    challenge: pattern(0x10),
                    methods: vec![
                        AuthMethod::RSA_SHA256_TLSSECRET,
                        AuthMethod::ED25519_SHA256_RFC5705,
                    ],
                },
            ),
        ),
        (
            "authenticate",
            ChanCell::new(
                None,
                Authenticate {
                    auth_type: AuthMethod::ED25519_SHA256_RFC5705,
                    body: pattern::<40>(0x40).to_vec(),
                },
            ),
        ),
        (
            "netinfo",
            ChanCell::new(
                None,
                Netinfo {
                    timestamp: 0x5f5e_1000,
                    other_addr: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
                    my_addrs: vec![
                        IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)),
                        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
                    ],
                },
            ),
        ),
        (
            "netinfo_client",
            ChanCell::new(
                None,
                Netinfo {
                    timestamp: 0,
                    other_addr: None,
                    my_addrs: vec![],
                },
            ),
        ),
        (
            "create_fast",
            ChanCell::new(cid(0x8000_0001), CreateFast { x: pattern(1) }),
        ),
        (
            "created_fast",
            ChanCell::new(
                cid(0x8000_0001),
                CreatedFast {
                    y: pattern(0x20),
                    kh: pattern(0x40),
                },
            ),
        ),
        (
            "create2",
            ChanCell::new(
                cid(0x8000_0002),
                Create2 {
                    handshake_type: HandshakeType::NTOR,
                    hdata: pattern::<84>(0x60).to_vec(),
                },
            ),
        ),
        (
            "created2",
            ChanCell::new(
                cid(0x8000_0002),
                Created2 {
                    hdata: pattern::<64>(0x90).to_vec(),
                },
            ),
        ),
        (
            "create",
            ChanCell::new(
                cid(3),
                Create {
                    handshake: pattern(0x11),
                },
            ),
        ),
        (
            "created",
            ChanCell::new(
                cid(3),
                Created {
                    handshake: pattern(0x22),
                },
            ),
        ),
        (
            "relay",
            ChanCell::new(
                cid(0x8000_0003),
                Relay {
                    body: RelayCellBody(pattern(0x33)),
                },
            ),
        ),
        (
            "relay_early",
            ChanCell::new(
                cid(0x8000_0003),
                RelayEarly {
                    body: RelayCellBody(pattern(0x44)),
                },
            ),
        ),
        (
            "destroy",
            ChanCell::new(
                cid(0x8000_0004),
                Destroy {
                    reason: DestroyReason::FINISHED,
                },
            ),
        ),
        (
            "padding_negotiate",
            ChanCell::new(None, PaddingNegotiate::start(1500, 9500)),
        ),
        (
            "unrecognized_fixed",
            ChanCell::new(
                cid(7),
                Unrecognized {
                    cmd: ChanCmd(13),
                    body: pattern::<509>(0x55).to_vec(),
                },
            ),
        ),
        (
            "unrecognized_var",
            ChanCell::new(
                None,
                Unrecognized {
                    cmd: ChanCmd(200),
                    body: vec![9, 8, 7],
                },
            ),
        ),
        (
            "authorize",
            ChanCell::new(
                None,
                Unrecognized {
                    cmd: ChanCmd::AUTHORIZE,
                    body: vec![1],
                },
            ),
        ),
    ]
}

/// A cell with the circuit id narrowed to 2 bytes, for link v3.
fn for_v3(cell: &ChanCell) -> ChanCell {
    let circ_id = cell
        .circ_id
        .and_then(|c| CircId::new(c.get() & 0xffff).or(CircId::new(1)));
    ChanCell {
        circ_id,
        msg: cell.msg.clone(),
    }
}

#[test]
fn every_message_round_trips_on_every_version() {
    for version in LINK_VERSIONS {
        let codec = v(version);
        for (name, cell) in samples() {
            let cell = if version == 3 { for_v3(&cell) } else { cell };
            let bytes = codec.encode_to_vec(&cell).unwrap();
            if !cell.msg.cmd().is_var_len() {
                assert_eq!(bytes.len(), codec.fixed_cell_len(), "{name}");
            }
            let (back, used) = codec.decode(&bytes).unwrap().unwrap();
            assert_eq!(used, bytes.len(), "{name}");
            assert_eq!(back, cell, "{name} v{version}");
            // Every strict prefix is "need more bytes".
            for cut in 0..bytes.len() {
                assert_eq!(codec.decode(&bytes[..cut]), Ok(None), "{name} cut at {cut}");
            }
        }
    }
}

#[test]
fn snapshots_of_every_message() {
    for (name, cell) in samples() {
        // VERSIONS goes on the wire before the version is known: 2-byte circuit id.
        let codec = if name == "versions" {
            ChannelCodec::negotiating()
        } else {
            v(4)
        };
        let bytes = codec.encode_to_vec(&cell).unwrap();
        insta::assert_snapshot!(name, hex::encode(bytes));
    }
    let v3 = v(3);
    let cell = for_v3(
        &samples()
            .into_iter()
            .find(|(n, _)| *n == "destroy")
            .unwrap()
            .1,
    );
    insta::assert_snapshot!("destroy_v3", hex::encode(v3.encode_to_vec(&cell).unwrap()));
}

#[test]
fn cell_lengths_follow_the_link_version() {
    let cell = ChanCell::new(
        cid(1),
        Destroy {
            reason: DestroyReason::NONE,
        },
    );
    assert_eq!(v(3).encode_to_vec(&cell).unwrap().len(), 512);
    assert_eq!(v(4).encode_to_vec(&cell).unwrap().len(), 514);
    assert_eq!(v(5).encode_to_vec(&cell).unwrap().len(), 514);
    let mut out = [0xffu8; MAX_FIXED_CELL_LEN];
    assert_eq!(v(3).encode_fixed(&cell, &mut out), Ok(512));
    assert_eq!(&out[..4], &[0, 1, 4, 0]);
    assert!(out[4..512].iter().all(|b| *b == 0), "padding is zeroed");
    assert_eq!(v(4).encode_fixed(&cell, &mut out), Ok(514));
    assert_eq!(&out[..6], &[0, 0, 0, 1, 4, 0]);
    let versions = ChanCell::new(None, Versions { versions: vec![4] });
    assert!(v(4).encode_fixed(&versions, &mut out).is_err());
}

#[test]
fn versions_known_answer() {
    // tor-spec: VERSIONS always uses a 2-byte circuit id; a v3+ initiator sends 3, 4, 5.
    let bytes = hex::decode("0000070006000300040005").unwrap();
    let codec = ChannelCodec::negotiating();
    let (cell, used) = codec.decode(&bytes).unwrap().unwrap();
    assert_eq!(used, bytes.len());
    let ChanMsg::Versions(vs) = &cell.msg else {
        panic!("{cell:?}")
    };
    assert_eq!(vs.versions, vec![3, 4, 5]);
    assert_eq!(vs.best_shared(&LINK_VERSIONS), Some(5));
    assert_eq!(vs.best_shared(&[1, 2]), None);
    assert_eq!(codec.encode_to_vec(&cell).unwrap(), bytes);
}

#[test]
fn negotiating_accepts_only_versions() {
    let codec = ChannelCodec::negotiating();
    assert_eq!(codec.circ_id_len(), 2);
    assert_eq!(codec.link_version(), None);
    // A NETINFO cell with a 2-byte id is rejected as soon as the command is seen.
    assert!(codec.decode(&[0, 0, 8]).is_err());
    assert_eq!(codec.decode(&[0, 0]), Ok(None));
    let netinfo = ChanCell::new(None, Netinfo::default());
    assert!(codec.encode_to_vec(&netinfo).is_err());
}

#[test]
fn version_switch_between_cells_of_one_buffer() {
    // The responder's VERSIONS then CERTS (4-byte ids) arrive in one read.
    let mut stream = ChannelCodec::negotiating()
        .encode_to_vec(&ChanCell::new(
            None,
            Versions {
                versions: vec![4, 5],
            },
        ))
        .unwrap();
    let certs = ChanCell::new(
        None,
        Certs {
            entries: vec![CertEntry {
                cert_type: CertType::LINK_X509,
                body: vec![7],
            }],
        },
    );
    stream.extend(v(5).encode_to_vec(&certs).unwrap());

    let mut codec = ChannelCodec::negotiating();
    let (cell, used) = codec.decode(&stream).unwrap().unwrap();
    let ChanMsg::Versions(vs) = cell.msg else {
        panic!()
    };
    codec
        .set_link_version(vs.best_shared(&LINK_VERSIONS).unwrap())
        .unwrap();
    assert_eq!(codec.circ_id_len(), 4);
    let (cell, used2) = codec.decode(&stream[used..]).unwrap().unwrap();
    assert_eq!(cell, certs);
    assert_eq!(used + used2, stream.len());
}

#[test]
fn unsupported_link_versions_are_refused() {
    assert_eq!(ChannelCodec::new(2), Err(UnsupportedLinkVersion(2)));
    assert_eq!(ChannelCodec::new(6), Err(UnsupportedLinkVersion(6)));
    let mut c = ChannelCodec::negotiating();
    assert!(c.set_link_version(0).is_err());
    assert_eq!(c.link_version(), None);
}

#[test]
fn circ_id_rules_are_enforced() {
    let codec = v(4);
    // DESTROY on circuit 0.
    let mut bytes = vec![0, 0, 0, 0, 4];
    bytes.resize(514, 0);
    assert!(codec.decode(&bytes).is_err());
    // NETINFO on circuit 5.
    let mut bytes = vec![0, 0, 0, 5, 8];
    bytes.resize(514, 0);
    assert!(codec.decode(&bytes).is_err());
    // Unknown fixed command: any id.
    bytes[4] = 50;
    assert!(codec.decode(&bytes).unwrap().is_some());
    bytes[3] = 0;
    assert!(codec.decode(&bytes).unwrap().is_some());

    assert!(
        codec
            .encode_to_vec(&ChanCell::new(None, Relay::default()))
            .is_err()
    );
    assert!(
        codec
            .encode_to_vec(&ChanCell::new(cid(1), Padding))
            .is_err()
    );
    assert_eq!(CircId::new(0), None);
    assert_eq!(CircId::raw(None), 0);
    assert!(ChanCmd::CREATE2.allows_circ_id(cid(9)));
    assert_eq!(ChanCmd(77).circ_id_rule(), CircIdRule::Any);
}

#[test]
fn wide_circ_id_does_not_fit_link_v3() {
    let cell = ChanCell::new(
        cid(0x1_0000),
        Destroy {
            reason: DestroyReason::NONE,
        },
    );
    let mut out = Vec::new();
    assert!(v(3).encode(&cell, &mut out).is_err());
    assert!(out.is_empty(), "nothing written on failure");
    assert!(v(4).encode(&cell, &mut out).is_ok());
}

#[test]
fn commands_and_open_ints() {
    assert!(ChanCmd::VERSIONS.is_var_len());
    assert!(ChanCmd::VPADDING.is_var_len());
    assert!(ChanCmd(255).is_var_len());
    assert!(!ChanCmd::RELAY.is_var_len());
    assert!(!ChanCmd(127).is_var_len());
    assert_eq!(ChanCmd::AUTHENTICATE.get(), 131);
    assert_eq!(ChanCmd::AUTHORIZE.get(), 132);
    assert_eq!(alloc::format!("{}", ChanCmd::CREATE2), "CREATE2");
    assert_eq!(alloc::format!("{:?}", ChanCmd(42)), "ChanCmd(42)");
    assert_eq!(DestroyReason::NOSUCHSERVICE.get(), 12);
    assert_eq!(DestroyReason(7).name(), Some("OR_IDENTITY"));
    assert_eq!(CertType(7), CertType::RSA_ED_CROSSCERT);
    assert_eq!(HandshakeType::NTOR_V3.get(), 3);
    assert!(!HandshakeType(9).is_recognized());
}

fn decode_msg(cmd: ChanCmd, body: &[u8]) -> crate::codec::Result<ChanMsg> {
    ChanMsg::decode(cmd, body)
}

#[test]
fn versions_of_odd_length_are_invalid() {
    assert_eq!(
        decode_msg(ChanCmd::VERSIONS, &[0, 3, 0]),
        Err(Error::BadLength("VERSIONS payload of odd length"))
    );
    assert_eq!(
        decode_msg(ChanCmd::VERSIONS, &[]),
        Ok(ChanMsg::Versions(Versions::default()))
    );
}

#[test]
fn create2_hlen_must_fit() {
    let mut body = [0u8; CELL_BODY_LEN];
    body[..4].copy_from_slice(&[0, 2, 0x01, 0xfc]); // HLEN 508 > 505 left
    assert!(decode_msg(ChanCmd::CREATE2, &body).is_err());
    body[..4].copy_from_slice(&[0, 2, 0x01, 0xf9]); // HLEN 505: exactly fits
    let ChanMsg::Create2(c) = decode_msg(ChanCmd::CREATE2, &body).unwrap() else {
        panic!()
    };
    assert_eq!(c.hdata.len(), 505);
    assert!(decode_msg(ChanCmd::CREATED2, &[0x01, 0xff, 0]).is_err());
    // Too much hdata for a fixed cell fails to encode.
    let big = ChanCell::new(
        cid(1),
        Create2 {
            handshake_type: HandshakeType::NTOR,
            hdata: vec![0; 506],
        },
    );
    assert_eq!(
        v(4).encode_to_vec(&big),
        Err(EncodeError::TooLong("fixed cell body"))
    );
}

#[test]
fn netinfo_addresses() {
    let mut body = Vec::new();
    body.extend([0, 0, 0, 9]); // time
    body.extend([4, 5, 1, 2, 3, 4, 5]); // IPv4 of length 5: invalid
    body.push(0);
    assert!(decode_msg(ChanCmd::NETINFO, &body).is_err());

    let mut body = Vec::new();
    body.extend([0, 0, 0, 9]);
    body.extend([6, 4, 1, 2, 3, 4]); // IPv6 of length 4: invalid
    body.push(0);
    assert!(decode_msg(ChanCmd::NETINFO, &body).is_err());

    // Unknown address types are skipped, in OTHERADDR and MYADDR.
    let mut body = Vec::new();
    body.extend([0, 0, 0, 9]);
    body.extend([0xf0, 3, 9, 9, 9]);
    body.push(3);
    body.extend([4, 4, 10, 0, 0, 1]);
    body.extend([0, 2, 1, 1]);
    body.extend([6, 16]);
    body.extend([0u8; 15]);
    body.push(1);
    body.resize(CELL_BODY_LEN, 0);
    let ChanMsg::Netinfo(n) = decode_msg(ChanCmd::NETINFO, &body).unwrap() else {
        panic!()
    };
    assert_eq!(n.timestamp, 9);
    assert_eq!(n.other_addr, None);
    assert_eq!(
        n.my_addrs,
        vec![
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        ]
    );

    // Truncated: the address count promises more than the body holds.
    assert!(decode_msg(ChanCmd::NETINFO, &[0, 0, 0, 0, 0, 0, 2, 4, 4]).is_err());

    // 27 IPv6 addresses fit in 509 bytes (4 + 2 + 1 + 27 * 18 = 493); 28 do not.
    let mut n = Netinfo {
        timestamp: 1,
        other_addr: None,
        my_addrs: vec![IpAddr::V6(Ipv6Addr::LOCALHOST); 27],
    };
    assert!(v(4).encode_to_vec(&ChanCell::new(None, n.clone())).is_ok());
    n.my_addrs.push(IpAddr::V6(Ipv6Addr::LOCALHOST));
    assert!(v(4).encode_to_vec(&ChanCell::new(None, n)).is_err());
}

#[test]
fn truncated_bodies_are_invalid_not_incomplete() {
    for cmd in 0..=255u8 {
        let r = decode_msg(ChanCmd(cmd), &[]);
        if let Err(e) = r {
            assert!(!e.is_incomplete(), "cmd {cmd}");
        }
    }
    // AUTH_CHALLENGE claiming more methods than present.
    let mut body = vec![0u8; 32];
    body.extend([0, 3, 0, 1]);
    assert!(decode_msg(ChanCmd::AUTH_CHALLENGE, &body).is_err());
    // CERTS whose certificate length runs past the end.
    assert!(decode_msg(ChanCmd::CERTS, &[1, 4, 0, 9, 1]).is_err());
}

#[test]
fn var_cell_payload_limit() {
    let codec = v(4);
    let ok = ChanCell::new(
        None,
        Unrecognized {
            cmd: ChanCmd(200),
            body: vec![0; MAX_VAR_PAYLOAD_LEN],
        },
    );
    let bytes = codec.encode_to_vec(&ok).unwrap();
    assert_eq!(bytes.len(), 4 + 1 + 2 + MAX_VAR_PAYLOAD_LEN);
    assert_eq!(codec.decode(&bytes).unwrap().unwrap().0, ok);
    let too_big = ChanCell::new(
        None,
        Unrecognized {
            cmd: ChanCmd(200),
            body: vec![0; MAX_VAR_PAYLOAD_LEN + 1],
        },
    );
    assert_eq!(
        codec.encode_to_vec(&too_big),
        Err(EncodeError::TooLong("variable cell payload"))
    );
}

#[test]
fn unrecognized_must_not_shadow_a_parsed_command() {
    let cell = ChanCell::new(
        cid(1),
        Unrecognized {
            cmd: ChanCmd::RELAY,
            body: vec![],
        },
    );
    assert!(v(4).encode_to_vec(&cell).is_err());
}

#[test]
fn padding_content_is_ignored() {
    let mut bytes = vec![0, 0, 0, 0, 128, 0, 3, 1, 2, 3];
    let (cell, _) = v(4).decode(&bytes).unwrap().unwrap();
    assert_eq!(cell.msg, ChanMsg::Vpadding(Vpadding { len: 3 }));
    bytes = vec![0xff; 514];
    bytes[..5].copy_from_slice(&[0, 0, 0, 0, 0]);
    assert_eq!(
        v(4).decode(&bytes).unwrap().unwrap().0.msg,
        ChanMsg::Padding(Padding)
    );
    assert_eq!(PaddingNegotiate::stop().command, PaddingNegotiateCmd::STOP);
}

/// Feed `stream` to a framer in chunks ending at `cuts`, as a link reading a socket
/// would: append each chunk to a buffer, take out every whole cell.
fn frame_in_chunks(codec: &ChannelCodec, stream: &[u8], cuts: &[usize]) -> Vec<ChanCell> {
    let mut buf: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    let mut at = 0;
    for &cut in cuts.iter().chain(core::iter::once(&stream.len())) {
        let cut = cut.clamp(at, stream.len());
        buf.extend_from_slice(&stream[at..cut]);
        at = cut;
        while let Some((cell, used)) = codec.decode(&buf).unwrap() {
            buf.drain(..used);
            out.push(cell);
        }
    }
    assert!(buf.is_empty());
    out
}

fn sample_stream(version: u16) -> (Vec<ChanCell>, Vec<u8>) {
    let codec = v(version);
    let cells: Vec<ChanCell> = samples()
        .into_iter()
        .map(|(_, c)| if version == 3 { for_v3(&c) } else { c })
        .collect();
    let mut stream = Vec::new();
    for c in &cells {
        codec.encode(c, &mut stream).unwrap();
    }
    (cells, stream)
}

#[test]
fn any_single_split_gives_the_same_cells() {
    for version in LINK_VERSIONS {
        let codec = v(version);
        let (cells, stream) = sample_stream(version);
        for cut in 0..=stream.len() {
            assert_eq!(frame_in_chunks(&codec, &stream, &[cut]), cells);
        }
        // One byte at a time.
        let every: Vec<usize> = (0..stream.len()).collect();
        assert_eq!(frame_in_chunks(&codec, &stream, &every), cells);
    }
}

#[test]
fn fuzz_random_chunkings_give_the_same_cells() {
    let streams: Vec<(ChannelCodec, Vec<ChanCell>, Vec<u8>)> = LINK_VERSIONS
        .iter()
        .map(|&ver| {
            let (cells, stream) = sample_stream(ver);
            (v(ver), cells, stream)
        })
        .collect();
    bolero::check!()
        .with_type::<(u8, Vec<u16>)>()
        .for_each(|(which, steps)| {
            let (codec, cells, stream) = &streams[usize::from(*which) % streams.len()];
            let mut cuts = Vec::new();
            let mut at = 0usize;
            for s in steps {
                at += usize::from(*s % 1200);
                cuts.push(at);
            }
            assert_eq!(&frame_in_chunks(codec, stream, &cuts), cells);
        });
}

fn codecs() -> [ChannelCodec; 4] {
    [ChannelCodec::negotiating(), v(3), v(4), v(5)]
}

/// Decoding arbitrary bytes never panics; whatever decodes re-encodes to bytes that decode
/// to the same cell, and re-encoding is then a fixed point.
#[test]
fn fuzz_decode_never_panics_and_is_stable() {
    bolero::check!().for_each(|input: &[u8]| {
        for codec in codecs() {
            let Ok(Some((cell, used))) = codec.decode(input) else {
                continue;
            };
            assert!(used <= input.len());
            let again = codec.encode_to_vec(&cell).unwrap();
            let (cell2, used2) = codec.decode(&again).unwrap().unwrap();
            assert_eq!(used2, again.len());
            assert_eq!(cell2, cell);
            assert_eq!(codec.encode_to_vec(&cell2).unwrap(), again);
            // Cells whose encoding keeps every byte must come back byte for byte.
            if matches!(
                cell.msg,
                ChanMsg::Unrecognized(_) | ChanMsg::Relay(_) | ChanMsg::RelayEarly(_)
            ) {
                assert_eq!(again, &input[..used]);
            }
        }
    });
}

/// Bytes shaped like a cell (valid header and length) exercise the message decoders more
/// than raw noise: the same properties must hold.
#[test]
fn fuzz_message_decoders() {
    bolero::check!()
        .with_type::<(u8, Vec<u8>)>()
        .for_each(|(cmd, body)| {
            let cmd = ChanCmd(*cmd);
            let mut body = body.clone();
            if !cmd.is_var_len() {
                body.resize(CELL_BODY_LEN, 0);
            }
            let Ok(msg) = ChanMsg::decode(cmd, &body) else {
                return;
            };
            assert_eq!(msg.cmd(), cmd);
            let mut enc = Vec::new();
            msg.encode_body(&mut enc).unwrap();
            assert_eq!(ChanMsg::decode(cmd, &enc), Ok(msg));
        });
}

/// Unknown commands round-trip byte for byte, fixed and variable.
#[test]
fn fuzz_unknown_commands_round_trip_exactly() {
    bolero::check!()
        .with_type::<(u8, u32, Vec<u8>)>()
        .for_each(|(cmd, id, body)| {
            let cmd = ChanCmd(*cmd);
            if (cmd.is_recognized() && cmd != ChanCmd::AUTHORIZE)
                || body.len() > MAX_VAR_PAYLOAD_LEN
            {
                return;
            }
            let mut body = body.clone();
            if !cmd.is_var_len() {
                body.resize(CELL_BODY_LEN, 0);
            }
            for codec in [v(3), v(4), v(5)] {
                let id = if codec.circ_id_len() == 2 {
                    id & 0xffff
                } else {
                    *id
                };
                let mut raw = Vec::new();
                if codec.circ_id_len() == 2 {
                    raw.extend((id as u16).to_be_bytes());
                } else {
                    raw.extend(id.to_be_bytes());
                }
                raw.push(cmd.0);
                if cmd.is_var_len() {
                    raw.extend((body.len() as u16).to_be_bytes());
                }
                raw.extend(&body);
                let (cell, used) = codec.decode(&raw).unwrap().unwrap();
                assert_eq!(used, raw.len());
                assert_eq!(
                    cell.msg,
                    ChanMsg::Unrecognized(Unrecognized {
                        cmd,
                        body: body.clone()
                    })
                );
                assert_eq!(codec.encode_to_vec(&cell).unwrap(), raw);
            }
        });
}

#[test]
fn relay_body_debug_is_short() {
    let s: String = alloc::format!("{:?}", RelayCellBody::default());
    assert!(s.len() < 80, "{s}");
}
