use super::*;
use std::net::SocketAddr;

/// Run a whole handshake on `messages`, fed one message at a time; return the replies
/// sent and the final request.
fn run(messages: &[&[u8]]) -> (Vec<Vec<u8>>, SocksRequest) {
    let mut hs = SocksHandshake::new();
    let mut replies = Vec::new();
    for (i, msg) in messages.iter().enumerate() {
        match hs.step(msg).unwrap() {
            SocksStep::Reply { consumed, reply } => {
                assert_eq!(consumed, msg.len());
                replies.push(reply.as_bytes().to_vec());
            }
            SocksStep::Request { consumed, request } => {
                assert_eq!(consumed, msg.len());
                assert_eq!(i, messages.len() - 1);
                assert!(hs.is_finished());
                return (replies, request);
            }
            SocksStep::NeedMore => panic!("message {i} incomplete"),
        }
    }
    panic!("no request")
}

fn hex(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).unwrap()
}

#[test]
fn socks5_connect_ipv4_no_auth() {
    // RFC 1928: greeting with one method (no auth), then CONNECT 192.0.2.1:443.
    let (replies, req) = run(&[&hex("05 01 00"), &hex("05 01 00 01 c0000201 01bb")]);
    assert_eq!(replies, [hex("05 00")]);
    assert_eq!(req.version, SocksVersion::V5);
    assert_eq!(req.command, SocksCmd::CONNECT);
    assert_eq!(req.addr, SocksAddr::Ip("192.0.2.1".parse().unwrap()));
    assert_eq!(req.port, 443);
    assert_eq!(req.auth, SocksAuth::None);
}

#[test]
fn socks5_connect_domain() {
    let (_, req) = run(&[
        &hex("05 02 00 01"),
        &hex("05 01 00 03 0b 6578616d706c652e636f6d 0050"),
    ]);
    assert_eq!(req.addr, SocksAddr::Hostname("example.com".into()));
    assert_eq!(req.port, 80);
    assert_eq!(req.addr.to_string(), "example.com");
}

#[test]
fn socks5_connect_ipv6() {
    let (_, req) = run(&[
        &hex("05 01 00"),
        &hex("05 01 00 04 20010db8000000000000000000000001 1f90"),
    ]);
    assert_eq!(req.addr, SocksAddr::Ip("2001:db8::1".parse().unwrap()));
    assert_eq!(req.port, 8080);
    assert_eq!(req.addr.to_string(), "[2001:db8::1]");
}

#[test]
fn socks5_username_password_is_preferred_and_is_the_isolation_key() {
    // RFC 1929: the client offers no-auth and user/pass; tor picks user/pass.
    let (replies, req) = run(&[
        &hex("05 02 00 02"),
        &hex("01 05 616c696365 03 707764"),
        &hex("05 01 00 01 7f000001 0016"),
    ]);
    assert_eq!(replies, [hex("05 02"), hex("01 00")]);
    assert_eq!(
        *req.isolation_key(),
        SocksAuth::UsernamePassword {
            username: b"alice".to_vec(),
            password: b"pwd".to_vec()
        }
    );
}

#[test]
fn socks5_resolve_extension() {
    let (_, req) = run(&[&hex("05 01 00"), &hex("05 f0 00 03 03 616263 0000")]);
    assert_eq!(req.command, SocksCmd::RESOLVE);
    assert_eq!(req.addr, SocksAddr::Hostname("abc".into()));
}

#[test]
fn socks4_connect() {
    // SOCKS4: CONNECT 192.0.2.1:80, user id "bob".
    let (replies, req) = run(&[&hex("04 01 0050 c0000201 626f6200")]);
    assert!(replies.is_empty());
    assert_eq!(req.version, SocksVersion::V4);
    assert_eq!(req.addr, SocksAddr::Ip("192.0.2.1".parse().unwrap()));
    assert_eq!(req.port, 80);
    assert_eq!(req.auth, SocksAuth::Socks4UserId(b"bob".to_vec()));
}

#[test]
fn socks4a_connect_hostname() {
    // SOCKS4a: IP 0.0.0.1 means a hostname follows the (empty) user id.
    let (_, req) = run(&[&hex("04 01 01bb 00000001 00 6578616d706c652e6f726700")]);
    assert_eq!(req.addr, SocksAddr::Hostname("example.org".into()));
    assert_eq!(req.port, 443);
    assert_eq!(req.auth, SocksAuth::None);
}

#[test]
fn byte_at_a_time_gives_the_same_request() {
    let whole = hex("04 01 01bb 00000001 757365 00 6578616d706c652e6f726700 ffff");
    let mut hs = SocksHandshake::new();
    for n in 0..whole.len() - 2 {
        assert_eq!(hs.step(&whole[..n]).unwrap(), SocksStep::NeedMore, "at {n}");
    }
    let SocksStep::Request { consumed, request } = hs.step(&whole).unwrap() else {
        panic!()
    };
    // The two trailing bytes are early stream data, not part of the request.
    assert_eq!(consumed, whole.len() - 2);
    assert_eq!(request.auth, SocksAuth::Socks4UserId(b"use".to_vec()));
}

#[test]
fn refusals_carry_the_right_reply() {
    let err = |msgs: &[&[u8]]| {
        let mut hs = SocksHandshake::new();
        for m in &msgs[..msgs.len() - 1] {
            assert!(matches!(hs.step(m), Ok(SocksStep::Reply { .. })));
        }
        let e = hs.step(msgs[msgs.len() - 1]).unwrap_err();
        assert!(hs.is_finished());
        assert_eq!(hs.step(&[5]).unwrap_err().kind, SocksErrorKind::Finished);
        (e.kind, e.reply.map(|r| r.as_bytes().to_vec()))
    };
    // GSSAPI only: no acceptable method.
    assert_eq!(
        err(&[&hex("05 01 01")]),
        (SocksErrorKind::NoAcceptableMethod, Some(hex("05 ff")))
    );
    // BIND, seen as soon as the command byte arrives.
    assert_eq!(
        err(&[&hex("05 01 00"), &hex("05 02")]),
        (
            SocksErrorKind::UnsupportedCommand(2),
            Some(hex("05 07 00 01 00000000 0000"))
        )
    );
    assert_eq!(
        err(&[&hex("05 01 00"), &hex("05 01 00 05")]),
        (
            SocksErrorKind::UnsupportedAddressType(5),
            Some(hex("05 08 00 01 00000000 0000"))
        )
    );
    assert_eq!(
        err(&[&hex("05 01 00"), &hex("05 01 00 03 00 0050")]),
        (
            SocksErrorKind::Malformed("empty hostname"),
            Some(hex("05 01 00 01 00000000 0000"))
        )
    );
    assert_eq!(
        err(&[&hex("04 02 0050 7f000001 00")]),
        (
            SocksErrorKind::UnsupportedCommand(2),
            Some(hex("00 5b 0000 00000000"))
        )
    );
    assert_eq!(
        err(&[b"GET / HTTP/1.1\r\n"]).0,
        SocksErrorKind::UnknownVersion(b'G')
    );
    // A SOCKS4 user id without its NUL in 256 bytes.
    let mut long = hex("04 01 0050 7f000001");
    long.extend([b'a'; 256]);
    assert_eq!(err(&[&long]).0, SocksErrorKind::TooLong);
}

#[test]
fn longest_socks4a_request_fits_max_message_len() {
    let mut msg = hex("04 01 0050 00000001");
    msg.extend([b'u'; 255]);
    msg.push(0);
    msg.extend([b'h'; 255]);
    msg.push(0);
    assert_eq!(msg.len(), MAX_MESSAGE_LEN);
    let (_, req) = run(&[&msg]);
    assert_eq!(req.addr, SocksAddr::Hostname("h".repeat(255)));
}

#[test]
fn replies_byte_exact() {
    let v4: SocketAddr = "10.1.2.3:8080".parse().unwrap();
    let v6: SocketAddr = "[2001:db8::2]:443".parse().unwrap();
    let b = |r: SocksReply| r.as_bytes().to_vec();
    assert_eq!(
        b(SocksReply::success(SocksVersion::V5, None)),
        hex("05 00 00 01 00000000 0000")
    );
    assert_eq!(
        b(SocksReply::success(SocksVersion::V5, Some(v4))),
        hex("05 00 00 01 0a010203 1f90")
    );
    assert_eq!(
        b(SocksReply::success(SocksVersion::V5, Some(v6))),
        hex("05 00 00 04 20010db8000000000000000000000002 01bb")
    );
    assert_eq!(
        b(SocksReply::success(SocksVersion::V4, Some(v4))),
        hex("00 5a 1f90 0a010203")
    );
    assert_eq!(
        b(SocksReply::success(SocksVersion::V4, Some(v6))),
        hex("00 5a 0000 00000000")
    );
    assert_eq!(
        b(SocksReply::failure(SocksVersion::V4, 3)),
        hex("00 5b 0000 00000000")
    );
    assert_eq!(
        b(SocksReply::failure(SocksVersion::V5, 3)),
        hex("05 05 00 01 00000000 0000")
    );
    // Reason 0 is "no reason" in a failure: never a success code.
    assert_eq!(
        b(SocksReply::failure(SocksVersion::V5, 0)),
        hex("05 01 00 01 00000000 0000")
    );
}

#[test]
fn end_reasons_map_as_in_tor() {
    let expected: [(u8, u8); 15] = [
        (0, 0),  // (no reason: success, never sent)
        (1, 1),  // MISC -> general failure
        (2, 4),  // RESOLVEFAILED -> host unreachable
        (3, 5),  // CONNECTREFUSED -> connection refused
        (4, 2),  // EXITPOLICY -> not allowed
        (5, 1),  // DESTROY -> general failure
        (6, 5),  // DONE before CONNECTED -> connection refused
        (7, 6),  // TIMEOUT -> TTL expired
        (8, 4),  // NOROUTE -> host unreachable
        (9, 1),  // HIBERNATING
        (10, 1), // INTERNAL
        (11, 1), // RESOURCELIMIT
        (12, 5), // CONNRESET -> connection refused
        (13, 1), // TORPROTOCOL
        (14, 1), // NOTDIRECTORY
    ];
    for (reason, code) in expected {
        assert_eq!(socks5_code_for_end_reason(reason), code, "reason {reason}");
    }
    assert_eq!(socks5_code_for_end_reason(200), 1);
}

/// Any input, whole or in pieces: no panic, the same outcome either way, and a request
/// never consumes more than it was given.
#[test]
fn fuzz_handshake_never_panics_and_ignores_chunking() {
    bolero::check!().for_each(|input: &[u8]| {
        let whole = drive(input, input.len().max(1));
        let pieces = drive(input, 3);
        assert_eq!(whole, pieces);
    });
}

/// Drive a handshake over `input`, offering it `chunk` more bytes at a time; return the
/// replies and the request or error at the end.
fn drive(input: &[u8], chunk: usize) -> (Vec<Vec<u8>>, Option<Result<SocksRequest, SocksError>>) {
    let mut hs = SocksHandshake::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut replies = Vec::new();
    let mut offered = 0;
    loop {
        match hs.step(&buf) {
            Ok(SocksStep::NeedMore) => {
                assert!(buf.len() <= MAX_MESSAGE_LEN);
                if offered >= input.len() {
                    return (replies, None);
                }
                let end = (offered + chunk).min(input.len());
                buf.extend_from_slice(&input[offered..end]);
                offered = end;
            }
            Ok(SocksStep::Reply { consumed, reply }) => {
                assert!(consumed <= buf.len());
                buf.drain(..consumed);
                replies.push(reply.as_bytes().to_vec());
            }
            Ok(SocksStep::Request { consumed, request }) => {
                assert!(consumed <= buf.len());
                return (replies, Some(Ok(request)));
            }
            Err(e) => return (replies, Some(Err(e))),
        }
    }
}

/// Any well-formed SOCKS5 domain request parses back to what was encoded.
#[test]
fn fuzz_socks5_request_round_trip() {
    bolero::check!()
        .with_type::<(u8, Vec<u8>, u16)>()
        .for_each(|(cmd, host, port)| {
            let host: String = String::from_utf8_lossy(host).replace('\0', "");
            if host.is_empty() || host.len() > 255 {
                return;
            }
            let mut req = vec![5, *cmd, 0, 3, host.len() as u8];
            req.extend_from_slice(host.as_bytes());
            req.extend_from_slice(&port.to_be_bytes());
            let mut hs = SocksHandshake::new();
            assert!(matches!(hs.step(&[5, 1, 0]), Ok(SocksStep::Reply { .. })));
            match hs.step(&req) {
                Ok(SocksStep::Request { consumed, request }) => {
                    assert_eq!(consumed, req.len());
                    assert_eq!(request.addr, SocksAddr::Hostname(host.clone()));
                    assert_eq!(request.port, *port);
                    assert_eq!(request.command, SocksCmd(*cmd));
                }
                Err(e) => assert_eq!(e.kind, SocksErrorKind::UnsupportedCommand(*cmd)),
                other => panic!("{other:?}"),
            }
        });
}
