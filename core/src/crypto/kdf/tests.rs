use super::*;
use alloc::vec;

fn tap(seed: &str) -> [u8; 100] {
    let mut out = [0u8; 100];
    kdf_tor(seed.as_bytes(), &mut out).unwrap();
    out
}

fn ntor(seed: &str) -> [u8; 100] {
    let mut out = [0u8; 100];
    ntor_kdf(seed.as_bytes(), &mut out).unwrap();
    out
}

// Vectors from tor's src/test/test_crypto.c, test_crypto_kdf_TAP.
#[test]
fn kdf_tor_tor_vectors() {
    assert_eq!(
        hex::encode(tap("")),
        "5ba93c9db0cff93f52b521d7420e43f6eda2784fbf8b4530d8\
         d246dd74ac53a13471bba17941dff7c4ea21bb365bbeeaf5f2\
         c654883e56d11e43c44e9842926af7ca0a8cca12604f945414\
         f07b01e13da42c6cf1de3abfdea9b95f34687cbbe92b9a7383"
    );
    assert_eq!(
        hex::encode(tap("Tor")),
        "776c6214fc647aaa5f683c737ee66ec44f03d0372e1cce6922\
         7950f236ddf1e329a7ce7c227903303f525a8c6662426e8034\
         870642a6dabbd41b5d97ec9bf2312ea729992f48f8ea2d0ba8\
         3f45dfda1a80bdc8b80de01b23e3e0ffae099b3e4ccf28dc28"
    );
}

// Vectors from tor's src/test/test_crypto.c, test_crypto_hkdf_sha256 (made with ntor_ref.py).
#[test]
fn ntor_kdf_tor_vectors() {
    assert_eq!(
        hex::encode(ntor("")),
        "d3490ed48b12a48f9547861583573fe3f19aafe3f81dc7fc75\
         eeed96d741b3290f941576c1f9f0b2d463d1ec7ab2c6bf71cd\
         d7f826c6298c00dbfe6711635d7005f0269493edf6046cc7e7\
         dcf6abe0d20c77cf363e8ffe358927817a3d3e73712cee28d8"
    );
    assert_eq!(
        hex::encode(ntor("Tor")),
        "5521492a85139a8d9107a2d5c0d9c91610d0f95989975ebee6\
         c02a4f8d622a6cfdf9b7c7edd3832e2760ded1eac309b76f8d\
         66c4a3c4d6225429b3a016e3c3d45911152fc87bc2de9630c3\
         961be9fdb9f93197ea8e5977180801926d3321fa21513e59ac"
    );
    assert_eq!(
        hex::encode(ntor(
            "AN ALARMING ITEM TO FIND ON YOUR CREDIT-RATING STATEMENT"
        )),
        "a2aa9b50da7e481d30463adb8f233ff06e9571a0ca6ab6df0f\
         b206fa34e5bc78d063fc291501beec53b36e5a0e434561200c\
         5f8bd13e0f88b3459600b4dc21d69363e2895321c06184879d\
         94b18f078411be70b767c7fc40679a9440a0c95ea83a23efbf"
    );
}

// RFC 5869 appendix A.1 (also checked by tor's test_crypto_hkdf_sha256_testvecs).
#[test]
fn hkdf_rfc5869_a1() {
    let ikm = [0x0b; 22];
    let salt = hex::decode("000102030405060708090a0b0c").unwrap();
    let info = hex::decode("f0f1f2f3f4f5f6f7f8f9").unwrap();
    let mut okm = [0u8; 42];
    hkdf_sha256(&ikm, &salt, &info, &mut okm).unwrap();
    assert_eq!(
        hex::encode(okm),
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    );
}

#[test]
fn kdf_tor_prefix_and_limits() {
    // A shorter output is a prefix of a longer one.
    let long = tap("Tor");
    let mut short = [0u8; 37];
    kdf_tor(b"Tor", &mut short).unwrap();
    assert_eq!(&short[..], &long[..37]);

    let mut max = vec![0u8; KDF_TOR_MAX_LEN];
    assert!(kdf_tor(b"x", &mut max).is_ok());
    let mut over = vec![0u8; KDF_TOR_MAX_LEN + 1];
    assert_eq!(
        kdf_tor(b"x", &mut over),
        Err(KdfError::OutputTooLong {
            requested: KDF_TOR_MAX_LEN + 1,
            max: KDF_TOR_MAX_LEN
        })
    );
    assert!(over.iter().all(|&b| b == 0));

    let mut over = vec![0u8; HKDF_SHA256_MAX_LEN + 1];
    assert!(ntor_kdf(b"x", &mut over).is_err());
}
