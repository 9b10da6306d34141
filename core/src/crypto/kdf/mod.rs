//! Key derivation functions: KDF-TOR and ntor's HKDF-SHA256.
//!
//! Both are pure functions over caller-provided buffers, so deriving circuit keys
//! allocates nothing. See tor-spec "Setting circuit keys" (KDF-TOR) and "The ntor
//! handshake" (HKDF-SHA256 with `t_key` as salt and `m_expand` as info).

use core::fmt;

use hkdf::Hkdf;
use sha1::{Digest, Sha1};
use sha2::Sha256;

#[cfg(test)]
mod tests;

/// Length of one KDF-TOR block: a SHA-1 output.
pub const KDF_TOR_BLOCK_LEN: usize = 20;

/// The most KDF-TOR output we produce: 255 blocks. The one-byte counter would allow 256,
/// but Tor itself never asks for more than 255 (`crypto_dh_compute_secret`), and no
/// caller needs more than a few blocks.
pub const KDF_TOR_MAX_LEN: usize = 255 * KDF_TOR_BLOCK_LEN;

/// The most HKDF-SHA256 output RFC 5869 allows: 255 SHA-256 blocks.
pub const HKDF_SHA256_MAX_LEN: usize = 255 * 32;

/// Why key material could not be derived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KdfError {
    /// More output was asked for than the KDF can produce.
    OutputTooLong {
        /// The number of bytes asked for.
        requested: usize,
        /// The most this KDF gives.
        max: usize,
    },
}

impl fmt::Display for KdfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KdfError::OutputTooLong { requested, max } => {
                write!(
                    f,
                    "KDF output of {requested} bytes asked for; at most {max}"
                )
            }
        }
    }
}

impl core::error::Error for KdfError {}

/// KDF-TOR: fills `out` with the first `out.len()` bytes of
/// `H(seed | [00]) | H(seed | [01]) | ...`, H being SHA-1.
///
/// Used by CREATE_FAST (seed `X | Y`). Errors when `out` is longer than
/// [`KDF_TOR_MAX_LEN`], leaving `out` untouched.
pub fn kdf_tor(seed: &[u8], out: &mut [u8]) -> Result<(), KdfError> {
    if out.len() > KDF_TOR_MAX_LEN {
        return Err(KdfError::OutputTooLong {
            requested: out.len(),
            max: KDF_TOR_MAX_LEN,
        });
    }
    // The seed prefix is hashed once and cloned per block.
    let mut prefix = Sha1::new();
    Digest::update(&mut prefix, seed);
    for (counter, chunk) in (0u8..=u8::MAX).zip(out.chunks_mut(KDF_TOR_BLOCK_LEN)) {
        let mut h = prefix.clone();
        Digest::update(&mut h, [counter]);
        let block = h.finalize();
        let n = chunk.len();
        chunk.copy_from_slice(&block[..n]);
    }
    Ok(())
}

/// RFC 5869 HKDF-SHA256: extract with `salt`, then expand with `info` into `out`.
///
/// ntor uses it with `salt = t_key`, `info = m_expand` ([`ntor_kdf`]). Errors when `out`
/// is longer than [`HKDF_SHA256_MAX_LEN`].
pub fn hkdf_sha256(ikm: &[u8], salt: &[u8], info: &[u8], out: &mut [u8]) -> Result<(), KdfError> {
    let hk = Hkdf::<Sha256>::new(Some(salt), ikm);
    hk.expand(info, out).map_err(|_| KdfError::OutputTooLong {
        requested: out.len(),
        max: HKDF_SHA256_MAX_LEN,
    })
}

/// `t_key` of ntor: the HKDF salt.
pub const NTOR_T_KEY: &[u8] = b"ntor-curve25519-sha256-1:key_extract";
/// `m_expand` of ntor: the HKDF info.
pub const NTOR_M_EXPAND: &[u8] = b"ntor-curve25519-sha256-1:key_expand";

/// ntor's key expansion: HKDF-SHA256(secret_input, salt = `t_key`, info = `m_expand`)
/// into `out`. (HKDF's extract step with salt `t_key` is exactly ntor's
/// `KEY_SEED = H(secret_input, t_key)`.)
pub fn ntor_kdf(secret_input: &[u8], out: &mut [u8]) -> Result<(), KdfError> {
    hkdf_sha256(secret_input, NTOR_T_KEY, NTOR_M_EXPAND, out)
}
