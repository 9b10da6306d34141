//! The key material a circuit handshake hands to relay crypto.

use zeroize::Zeroize;

/// Length of a digest seed (`Df`, `Db`) and of `KH`: a SHA-1 output.
pub const DIGEST_KEY_LEN: usize = 20;
/// Length of an AES-128 key (`Kf`, `Kb`).
pub const CIPHER_KEY_LEN: usize = 16;

/// The keys of one hop of a circuit, as both ends derive them from a handshake.
///
/// `df`/`kf` protect the forward (client to relay) direction, `db`/`kb` the backward one.
/// `kh` is KDF-TOR's check value `KH` (CREATE_FAST) or, for ntor, the extra 20 bytes the
/// spec reserves as a nonce in place of `KH` for hidden services. Zeroed on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct CircuitKeys {
    /// Forward digest seed `Df`.
    pub df: [u8; DIGEST_KEY_LEN],
    /// Backward digest seed `Db`.
    pub db: [u8; DIGEST_KEY_LEN],
    /// Forward AES-128 key `Kf`.
    pub kf: [u8; CIPHER_KEY_LEN],
    /// Backward AES-128 key `Kb`.
    pub kb: [u8; CIPHER_KEY_LEN],
    /// `KH` (KDF-TOR) or the hidden-service nonce (ntor).
    pub kh: [u8; DIGEST_KEY_LEN],
}

impl CircuitKeys {
    /// Bytes of `Df | Db | Kf | Kb`.
    pub const RELAY_KEYS_LEN: usize = 2 * DIGEST_KEY_LEN + 2 * CIPHER_KEY_LEN;
    /// Bytes of all key material: `Df | Db | Kf | Kb` plus 20 bytes of `KH`/nonce.
    pub const LEN: usize = Self::RELAY_KEYS_LEN + DIGEST_KEY_LEN;

    /// Splits key material laid out as ntor produces it: `Df | Db | Kf | Kb | nonce`.
    pub fn from_ntor_material(m: &[u8; Self::LEN]) -> Self {
        let mut k = Self::zeroed();
        let (df, rest) = m.split_at(DIGEST_KEY_LEN);
        let (db, rest) = rest.split_at(DIGEST_KEY_LEN);
        let (kf, rest) = rest.split_at(CIPHER_KEY_LEN);
        let (kb, kh) = rest.split_at(CIPHER_KEY_LEN);
        k.df.copy_from_slice(df);
        k.db.copy_from_slice(db);
        k.kf.copy_from_slice(kf);
        k.kb.copy_from_slice(kb);
        k.kh.copy_from_slice(kh);
        k
    }

    /// Splits key material laid out as KDF-TOR produces it: `KH | Df | Db | Kf | Kb`.
    pub fn from_kdf_tor_material(m: &[u8; Self::LEN]) -> Self {
        let (kh, rest) = m.split_at(DIGEST_KEY_LEN);
        let mut ntor_order = [0u8; Self::LEN];
        ntor_order[..Self::RELAY_KEYS_LEN].copy_from_slice(rest);
        ntor_order[Self::RELAY_KEYS_LEN..].copy_from_slice(kh);
        let k = Self::from_ntor_material(&ntor_order);
        ntor_order.zeroize();
        k
    }

    fn zeroed() -> Self {
        CircuitKeys {
            df: [0; DIGEST_KEY_LEN],
            db: [0; DIGEST_KEY_LEN],
            kf: [0; CIPHER_KEY_LEN],
            kb: [0; CIPHER_KEY_LEN],
            kh: [0; DIGEST_KEY_LEN],
        }
    }
}

impl Drop for CircuitKeys {
    fn drop(&mut self) {
        self.df.zeroize();
        self.db.zeroize();
        self.kf.zeroize();
        self.kb.zeroize();
        self.kh.zeroize();
    }
}

impl core::fmt::Debug for CircuitKeys {
    // Secrets stay out of logs.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("CircuitKeys { .. }")
    }
}
