//! One direction of one hop: AES-128-CTR plus the running SHA-1 digest.

use aes::Aes128;
use cipher::{KeyIvInit, StreamCipher};
use ctr::Ctr128BE;
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

use super::{DIGEST, RECOGNIZED, RelayCellBody, SendmeTag};

/// AES-128-CTR keystream and running digest of one direction of one hop.
pub(crate) struct Layer {
    cipher: Ctr128BE<Aes128>,
    digest: Sha1,
}

impl Layer {
    /// A layer keyed with `key`, its digest seeded with `seed` (tor-spec: the digest is
    /// "seeded" by hashing Df or Db first).
    pub(crate) fn new(key: &[u8; 16], seed: &[u8; 20]) -> Self {
        let cipher = Ctr128BE::<Aes128>::new(key.into(), &[0u8; 16].into());
        let mut digest = Sha1::new();
        Digest::update(&mut digest, seed);
        Layer { cipher, digest }
    }

    /// Applies this layer's keystream (encrypting and decrypting are the same).
    #[inline]
    pub(crate) fn apply(&mut self, body: &mut RelayCellBody) {
        self.cipher.apply_keystream(body);
    }

    /// Sets `recognized` to zero and the digest field from the running digest, as the
    /// originator of a cell does before encrypting it. Returns the cell's SENDME tag.
    pub(crate) fn set_digest(&mut self, body: &mut RelayCellBody) -> SendmeTag {
        body[RECOGNIZED].fill(0);
        body[DIGEST].fill(0);
        Digest::update(&mut self.digest, &body[..]);
        let tag: [u8; 20] = self.digest.clone().finalize().into();
        body[DIGEST].copy_from_slice(&tag[..4]);
        SendmeTag(tag)
    }

    /// Whether a decrypted cell is recognized by this layer: `recognized` is zero and the
    /// digest field matches. On a match the running digest takes the cell in and its tag
    /// is returned; on a miss the running digest is left exactly as it was.
    pub(crate) fn check_recognized(&mut self, body: &mut RelayCellBody) -> Option<SendmeTag> {
        // Cheap test first: a middle relay must not pay for SHA-1 on cells it forwards.
        if !bool::from(body[RECOGNIZED].ct_eq(&[0, 0])) {
            return None;
        }
        let mut received = [0u8; 4];
        received.copy_from_slice(&body[DIGEST]);
        // The digest covers the cell with its digest field zeroed; zero it in place and
        // put it back, so the caller sees the cell as it came.
        body[DIGEST].fill(0);
        let mut tentative = self.digest.clone();
        Digest::update(&mut tentative, &body[..]);
        body[DIGEST].copy_from_slice(&received);
        let tag: [u8; 20] = tentative.clone().finalize().into();
        if bool::from(tag[..4].ct_eq(&received)) {
            self.digest = tentative;
            Some(SendmeTag(tag))
        } else {
            None
        }
    }

    /// The running digest now: the SENDME tag of the last cell this layer originated or
    /// recognized (or of the seed alone, before any).
    pub(crate) fn current_tag(&self) -> SendmeTag {
        SendmeTag(self.digest.clone().finalize().into())
    }
}
