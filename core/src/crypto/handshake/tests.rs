use super::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use x25519_dalek::{PublicKey, StaticSecret};

fn rng(seed: u8) -> ChaCha20Rng {
    ChaCha20Rng::from_seed([seed; 32])
}

fn h<const N: usize>(s: &str) -> [u8; N] {
    hex::decode(s).unwrap().try_into().unwrap()
}

fn keys_hex(k: &CircuitKeys) -> alloc::string::String {
    let mut s = alloc::string::String::new();
    for part in [&k.df[..], &k.db[..], &k.kf[..], &k.kb[..], &k.kh[..]] {
        s.push_str(&hex::encode(part));
    }
    s
}

// CREATE_FAST vectors "generated from Tor", as cited in Arti's tor-proto
// src/crypto/handshake/fast.rs tests: X, Y | KH, and 100 bytes of key material after KH
// (KDF-TOR(X|Y)[20..120]), of which Df|Db|Kf|Kb are the first 72.
#[test]
fn create_fast_known_answer() {
    let cases = [
        (
            "080E247DF7C252FCD2DC10F459703480C223E3A6",
            "BA95C0D092335428BF80093BBED0B7A26C49E1E8696FBF9C8D6BE26504219C000D26AFE370FCEF04",
            "AFA89B4FC8CF882335A582C52478B5FCB1E08DAF707E2C2D23B8C27D30BD461F3DF98A3AF82221CB658AD0AA8680B99067E4F7DBC546970EA9A56B26433C71DA867BDD09C14A1308BC327D6A448D71D2382B3AB6AF0BB4E19649A8DFF607DB9C57A04AC3",
        ),
        (
            "5F786C724C2F5978474A04FA63772057AD896A03",
            "6210B037001405742FE78B6F5B34E6DB3C9F2F7E24239498613E0ED872E110A00774A3FCB37A7507",
            "D41B65D83FB4B34A322B658BE4D706EDCD8B62813757E719118C394E1F22E1C8EA8959BAB30E856A914C3054946F547397094DE031F5BCA384C65C8880BF7AAB9CE7BEE33971F9DE8C22A23366F46BF8B5E5112321E216B0E02C62EEA3ABB72A0E062592",
        ),
    ];
    for (x, reply, material) in cases {
        let x: [u8; 20] = h(x);
        let reply: [u8; 40] = h(reply);
        let material = hex::decode(material).unwrap();
        let (state, cmsg) = fast_client_create_fixed(x);
        assert_eq!(cmsg, x);
        let mut y = [0u8; 20];
        y.copy_from_slice(&reply[..20]);
        let (smsg, s_keys) = fast_server_reply_fixed(y, &cmsg).unwrap();
        assert_eq!(smsg, reply);
        let c_keys = state.finish(&smsg).unwrap();
        assert_eq!(c_keys, s_keys);
        assert_eq!(&keys_hex(&c_keys)[..144], hex::encode(&material[..72]));
        assert_eq!(c_keys.kh[..], reply[20..]);
    }
}

#[test]
fn create_fast_round_trip_and_rejects() {
    let (state, cmsg) = fast_client_create(&mut rng(1));
    let (mut smsg, s_keys) = fast_server_reply(&mut rng(2), &cmsg).unwrap();
    let (state2, _) = fast_client_create_fixed(cmsg);
    assert_eq!(state.finish(&smsg).unwrap(), s_keys);
    smsg[35] ^= 16;
    assert_eq!(state2.finish(&smsg).unwrap_err(), HandshakeError::Failed);

    let (state, _) = fast_client_create(&mut rng(1));
    assert_eq!(
        state.finish(&smsg[..39]).unwrap_err(),
        HandshakeError::BadLength {
            expected: 40,
            got: 39
        }
    );
    assert!(fast_server_reply(&mut rng(2), &cmsg[..19]).is_err());
}

// ntor vectors from Arti's tor-proto src/crypto/handshake/ntor.rs `testvec` (made with
// tor's src/test/ntor_ref.py): fixed b, x, y and relay ID; expected onion-skin, reply and
// 72 bytes of key material.
#[test]
fn ntor_known_answer() {
    let b_sk: [u8; 32] = h("4820544f4c4420594f5520444f474954204b454550532048415050454e494e47");
    let b_pk: [u8; 32] = h("ccbc8541904d18af08753eae967874749e6149f873de937f57f8fd903a21c471");
    let x_sk: [u8; 32] = h("706f6461792069207075742e2e2e2e2e2e2e2e4a454c4c59206f6e2074686973");
    let x_pk: [u8; 32] = h("e65dfdbef8b2635837fe2cebc086a8096eae3213e6830dc407516083d412b078");
    let y_sk: [u8; 32] = h("70686520737175697272656c2e2e2e2e2e2e2e2e686173206869732067616d65");
    let y_pk: [u8; 32] = h("390480a14362761d6aec1fea840f6e9e928fb2adb7b25c670be1045e35133a37");
    let id: [u8; 20] = h("69546f6c64596f7541626f75745374616972732e");
    let client_msg = "69546f6c64596f7541626f75745374616972732eccbc8541904d18af08753eae967874749e6149f873de937f57f8fd903a21c471e65dfdbef8b2635837fe2cebc086a8096eae3213e6830dc407516083d412b078";
    let server_msg = "390480a14362761d6aec1fea840f6e9e928fb2adb7b25c670be1045e35133a371cbdf68b89923e1f85e8e18ee6e805ea333fe4849c790ffd2670bd80fec95cc8";
    let keys = "0c62dee7f48893370d0ef896758d35729867beef1a5121df80e00f79ed349af39b51cae125719182f19d932a667dae1afbf2e336e6910e7822223e763afad0a13342157969dc6b79";

    assert_eq!(PublicKey::from(&StaticSecret::from(x_sk)).to_bytes(), x_pk);
    let relay_sk = NtorSecretKey::new(id, StaticSecret::from(b_sk));
    assert_eq!(relay_sk.public().onion_key.to_bytes(), b_pk);

    let (state, cmsg) = ntor_client_create_fixed(StaticSecret::from(x_sk), relay_sk.public());
    assert_eq!(hex::encode(cmsg), client_msg);
    let (smsg, s_keys) =
        ntor_server_reply_fixed(StaticSecret::from(y_sk), &[relay_sk], &cmsg).unwrap();
    assert_eq!(hex::encode(smsg), server_msg);
    assert_eq!(smsg[..32], y_pk);
    let c_keys = state.finish(&smsg).unwrap();
    assert_eq!(c_keys, s_keys);
    assert_eq!(&keys_hex(&c_keys)[..144], keys);
}

fn relay(seed: u8) -> NtorSecretKey {
    NtorSecretKey::new([seed; 20], StaticSecret::random_from_rng(&mut rng(seed)))
}

#[test]
fn ntor_round_trip_with_key_choice() {
    let old = relay(7);
    let current = NtorSecretKey::new([7; 20], StaticSecret::random_from_rng(&mut rng(8)));
    let public = current.public().clone();
    let (state, cmsg) = ntor_client_create(&mut rng(9), &public);
    let (smsg, s_keys) = ntor_server_reply(&mut rng(10), &[old, current], &cmsg).unwrap();
    assert_eq!(state.finish(&smsg).unwrap(), s_keys);
}

#[test]
fn ntor_server_rejects_other_relay() {
    let ours = relay(1);
    let theirs = relay(2);
    let (_, cmsg) = ntor_client_create(&mut rng(3), theirs.public());
    assert_eq!(
        ntor_server_reply(&mut rng(4), &[ours], &cmsg).unwrap_err(),
        HandshakeError::UnknownKey
    );
    // Same identity, different onion key.
    let ours = relay(1);
    let mut other_key = ours.public().clone();
    other_key.onion_key = relay(5).public().onion_key;
    let (_, cmsg) = ntor_client_create(&mut rng(3), &other_key);
    assert_eq!(
        ntor_server_reply(&mut rng(4), &[ours], &cmsg).unwrap_err(),
        HandshakeError::UnknownKey
    );
}

#[test]
fn ntor_client_rejects_bad_auth_and_zero_point() {
    let r = relay(1);
    let (state, cmsg) = ntor_client_create(&mut rng(3), r.public());
    let (mut smsg, _) = ntor_server_reply(&mut rng(4), &[r], &cmsg).unwrap();
    smsg[40] ^= 1;
    assert_eq!(state.finish(&smsg).unwrap_err(), HandshakeError::Failed);

    // Y = 0 (a small-order point) makes EXP(Y, x) all zero: refused even with an AUTH
    // an attacker could compute.
    let r = relay(1);
    let (state, _) = ntor_client_create(&mut rng(3), r.public());
    assert_eq!(
        state.finish(&[0u8; 64]).unwrap_err(),
        HandshakeError::Failed
    );

    // Server side: X = 0 is refused too.
    let r = relay(1);
    let mut skin = [0u8; NTOR_CLIENT_MSG_LEN];
    skin[..20].copy_from_slice(&r.public().id);
    skin[20..52].copy_from_slice(r.public().onion_key.as_bytes());
    assert_eq!(
        ntor_server_reply(&mut rng(4), &[r], &skin).unwrap_err(),
        HandshakeError::Failed
    );
}

#[test]
fn handshake_decoders_never_panic() {
    bolero::check!().for_each(|input: &[u8]| {
        let r = relay(1);
        let _ = ntor_server_reply(&mut rng(4), &[r], input);
        let r = relay(1);
        let (state, _) = ntor_client_create(&mut rng(3), r.public());
        let _ = state.finish(input);
        let _ = fast_server_reply(&mut rng(4), input);
        let (state, _) = fast_client_create(&mut rng(3));
        let _ = state.finish(input);
    });
}
