use super::*;
use crate::crypto::kdf::kdf_tor;
use alloc::vec::Vec;

/// Deterministic keys for hop `i`: KDF-TOR("hop i"), laid out as KDF-TOR output.
fn hop_keys(i: u8) -> CircuitKeys {
    let mut m = [0u8; CircuitKeys::LEN];
    kdf_tor(&[b'h', b'o', b'p', b' ', i], &mut m).unwrap();
    CircuitKeys::from_kdf_tor_material(&m)
}

fn circuit(n: u8) -> (ClientCircuitCrypto, Vec<RelayHopCrypto>) {
    let mut client = ClientCircuitCrypto::new();
    let mut relays = Vec::new();
    for i in 0..n {
        let k = hop_keys(i);
        assert_eq!(client.add_hop(&k).unwrap(), HopNum(i));
        relays.push(RelayHopCrypto::new(&k));
    }
    (client, relays)
}

/// A DATA cell on stream 1 carrying "hello, onion", zero-padded.
fn sample_cell() -> RelayCellBody {
    let mut b = [0u8; RELAY_BODY_LEN];
    let data = b"hello, onion";
    b[0] = 2; // RELAY_DATA
    b[3..5].copy_from_slice(&1u16.to_be_bytes());
    b[9..11].copy_from_slice(&(data.len() as u16).to_be_bytes());
    b[11..11 + data.len()].copy_from_slice(data);
    b
}

/// The cell as the receiver sees it after decryption: recognized zero, digest set.
fn expected_plain(orig: &RelayCellBody, tag: &SendmeTag) -> RelayCellBody {
    let mut e = *orig;
    e[RECOGNIZED].fill(0);
    e[DIGEST].copy_from_slice(&tag.0[..4]);
    e
}

/// Client sends `orig` to `target`; relays 0..=target decrypt. Returns the wire bytes.
fn send_out(
    client: &mut ClientCircuitCrypto,
    relays: &mut [RelayHopCrypto],
    orig: &RelayCellBody,
    target: u8,
) -> RelayCellBody {
    let mut cell = *orig;
    let tag = client.encrypt_outbound(&mut cell, HopNum(target)).unwrap();
    let wire = cell;
    for (j, r) in relays.iter_mut().enumerate().take(usize::from(target) + 1) {
        match r.decrypt_outbound(&mut cell) {
            OutboundCell::ForUs(t) => {
                assert_eq!(j, usize::from(target), "recognized at the wrong hop");
                assert_eq!(t, tag);
                assert_eq!(r.last_outbound_tag(), tag);
            }
            OutboundCell::Forward => assert_ne!(j, usize::from(target), "not recognized"),
        }
    }
    assert_eq!(cell, expected_plain(orig, &tag));
    assert_eq!(client.last_outbound_tag(HopNum(target)), Some(tag));
    wire
}

/// Relay `origin` sends `orig` to the client. Returns the wire bytes.
fn send_in(
    client: &mut ClientCircuitCrypto,
    relays: &mut [RelayHopCrypto],
    orig: &RelayCellBody,
    origin: u8,
) -> RelayCellBody {
    let mut cell = *orig;
    let o = usize::from(origin);
    let tag = relays[o].originate_inbound(&mut cell);
    for r in relays[..o].iter_mut().rev() {
        r.encrypt_inbound(&mut cell);
    }
    let wire = cell;
    let (hop, t) = client.decrypt_inbound(&mut cell).unwrap();
    assert_eq!(hop, HopNum(origin));
    assert_eq!(t, tag);
    assert_eq!(client.last_inbound_tag(hop), Some(tag));
    assert_eq!(relays[o].last_inbound_tag(), tag);
    assert_eq!(cell, expected_plain(orig, &tag));
    wire
}

#[test]
fn one_hop_vectors() {
    let (mut client, mut relays) = circuit(1);
    let cell = sample_cell();
    let out1 = send_out(&mut client, &mut relays, &cell, 0);
    let out2 = send_out(&mut client, &mut relays, &cell, 0);
    // The keystream and the running digest move on: the same cell encrypts differently.
    assert_ne!(out1, out2);
    insta::assert_snapshot!("one_hop_outbound_1", hex::encode(out1));
    insta::assert_snapshot!("one_hop_outbound_2", hex::encode(out2));
    let in1 = send_in(&mut client, &mut relays, &cell, 0);
    insta::assert_snapshot!("one_hop_inbound_1", hex::encode(in1));
}

#[test]
fn three_hop_vectors() {
    let (mut client, mut relays) = circuit(3);
    let cell = sample_cell();
    let out_exit = send_out(&mut client, &mut relays, &cell, 2);
    let out_middle = send_out(&mut client, &mut relays, &cell, 1);
    insta::assert_snapshot!("three_hop_outbound_to_2", hex::encode(out_exit));
    insta::assert_snapshot!("three_hop_outbound_to_1", hex::encode(out_middle));
    let in_exit = send_in(&mut client, &mut relays, &cell, 2);
    let in_guard = send_in(&mut client, &mut relays, &cell, 0);
    insta::assert_snapshot!("three_hop_inbound_from_2", hex::encode(in_exit));
    insta::assert_snapshot!("three_hop_inbound_from_0", hex::encode(in_guard));
}

#[test]
fn errors() {
    let (mut client, _) = circuit(3);
    let mut cell = [0u8; RELAY_BODY_LEN];
    assert_eq!(
        client.encrypt_outbound(&mut cell, HopNum(3)),
        Err(RelayCryptoError::NoSuchHop(HopNum(3)))
    );
    assert_eq!(
        client.decrypt_inbound(&mut cell),
        Err(RelayCryptoError::NotRecognized)
    );
    let mut empty = ClientCircuitCrypto::new();
    assert_eq!(
        empty.encrypt_outbound(&mut cell, HopNum(0)),
        Err(RelayCryptoError::NoSuchHop(HopNum(0)))
    );
    assert_eq!(
        empty.decrypt_inbound(&mut cell),
        Err(RelayCryptoError::NotRecognized)
    );
    client.truncate(1);
    assert_eq!(client.n_hops(), 1);
}

#[test]
fn tags_follow_the_running_digest() {
    // The tag of a cell is the running digest after it; a SENDME v1 names it.
    let (mut client, mut relays) = circuit(2);
    let before = client.last_outbound_tag(HopNum(1)).unwrap();
    assert_eq!(before, relays[1].last_outbound_tag());
    let mut cell = sample_cell();
    let tag = client.encrypt_outbound(&mut cell, HopNum(1)).unwrap();
    assert_ne!(tag, before);
    assert_eq!(relays[0].decrypt_outbound(&mut cell), OutboundCell::Forward);
    assert_eq!(
        relays[1].decrypt_outbound(&mut cell),
        OutboundCell::ForUs(tag)
    );
    // A forwarding relay's digest does not move.
    assert_eq!(
        relays[0].last_outbound_tag(),
        client.last_outbound_tag(HopNum(0)).unwrap()
    );
}

/// Splits fuzz input into (hops, target, bit to flip, cell body).
fn params(input: &[u8]) -> (u8, u8, usize, RelayCellBody) {
    let (head, rest) = input.split_at(input.len().min(4));
    let mut h = [0u8; 4];
    h[..head.len()].copy_from_slice(head);
    let n = 1 + h[0] % 4;
    let target = h[1] % n;
    let bit = usize::from(u16::from_be_bytes([h[2], h[3]])) % (RELAY_BODY_LEN * 8);
    let mut body = [0u8; RELAY_BODY_LEN];
    let k = rest.len().min(RELAY_BODY_LEN);
    body[..k].copy_from_slice(&rest[..k]);
    (n, target, bit, body)
}

#[test]
fn any_cell_any_hop_round_trips_and_flips_never_pass() {
    bolero::check!().for_each(|input: &[u8]| {
        let (n, target, bit, body) = params(input);
        let t = usize::from(target);

        // Outbound: a good cell to `target`, then a corrupted one.
        let (mut client, mut relays) = circuit(n);
        send_out(&mut client, &mut relays, &body, target);
        let before: Vec<SendmeTag> = relays.iter().map(|r| r.last_outbound_tag()).collect();
        assert_eq!(client.last_outbound_tag(HopNum(target)), Some(before[t]));
        let mut bad = body;
        client.encrypt_outbound(&mut bad, HopNum(target)).unwrap();
        bad[bit / 8] ^= 1 << (bit % 8);
        for r in relays.iter_mut() {
            assert_eq!(r.decrypt_outbound(&mut bad), OutboundCell::Forward);
        }
        // No running digest moved, `target`'s included.
        let after: Vec<SendmeTag> = relays.iter().map(|r| r.last_outbound_tag()).collect();
        assert_eq!(before, after);
        // The client counted the lost cell into `target`'s digest and hops past it
        // consumed keystream the client did not, as on a real circuit (which closes);
        // hops before `target` are untouched and keep working.
        for h in (0..target).rev() {
            send_out(&mut client, &mut relays, &body, h);
        }

        // Inbound: a good cell from `target`, then a corrupted one.
        let (mut client, mut relays) = circuit(n);
        send_in(&mut client, &mut relays, &body, target);
        let before: Vec<Option<SendmeTag>> =
            (0..n).map(|h| client.last_inbound_tag(HopNum(h))).collect();
        let mut bad = body;
        relays[t].originate_inbound(&mut bad);
        for r in relays[..t].iter_mut().rev() {
            r.encrypt_inbound(&mut bad);
        }
        bad[bit / 8] ^= 1 << (bit % 8);
        assert_eq!(
            client.decrypt_inbound(&mut bad),
            Err(RelayCryptoError::NotRecognized)
        );
        let after: Vec<Option<SendmeTag>> =
            (0..n).map(|h| client.last_inbound_tag(HopNum(h))).collect();
        assert_eq!(before, after);
        for h in (0..target).rev() {
            send_in(&mut client, &mut relays, &body, h);
        }
    });
}
