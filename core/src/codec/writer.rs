//! Writers: growable (`Vec<u8>`) and fixed-size (`SliceWriter`, for cell bodies that must
//! not allocate).

use super::{EncodeError, Writeable};
use alloc::vec::Vec;

/// Something bytes can be appended to.
pub trait Writer {
    /// Append `bytes`.
    fn write_all(&mut self, bytes: &[u8]);

    /// Append one byte.
    fn write_u8(&mut self, v: u8) {
        self.write_all(&[v]);
    }
    /// Append a big-endian u16.
    fn write_u16(&mut self, v: u16) {
        self.write_all(&v.to_be_bytes());
    }
    /// Append a big-endian u32.
    fn write_u32(&mut self, v: u32) {
        self.write_all(&v.to_be_bytes());
    }
    /// Append a big-endian u64.
    fn write_u64(&mut self, v: u64) {
        self.write_all(&v.to_be_bytes());
    }
    /// Append `n` zero bytes.
    fn write_zeros(&mut self, n: usize) {
        const Z: [u8; 64] = [0; 64];
        let mut left = n;
        while left > 0 {
            let k = left.min(Z.len());
            self.write_all(&Z[..k]);
            left -= k;
        }
    }
    /// Append the encoding of `v`.
    fn write<T: Writeable + ?Sized>(&mut self, v: &T) -> Result<(), EncodeError> {
        v.write_onto(self)
    }
    /// Append `bytes` behind a one-byte length.
    fn write_u8_prefixed(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        let n = u8::try_from(bytes.len()).map_err(|_| EncodeError::TooLong("u8-prefixed field"))?;
        self.write_u8(n);
        self.write_all(bytes);
        Ok(())
    }
    /// Append `bytes` behind a two-byte length.
    fn write_u16_prefixed(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        let n =
            u16::try_from(bytes.len()).map_err(|_| EncodeError::TooLong("u16-prefixed field"))?;
        self.write_u16(n);
        self.write_all(bytes);
        Ok(())
    }
}

impl Writer for Vec<u8> {
    fn write_all(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Encodes `v` into a fresh vector.
pub fn to_vec<T: Writeable + ?Sized>(v: &T) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    v.write_onto(&mut out)?;
    Ok(out)
}

/// A writer into a fixed buffer (a cell body, say), which never allocates.
///
/// Writing past the end does not panic: the writer remembers the overflow and
/// [`SliceWriter::finish`] reports [`EncodeError::NoRoom`].
#[derive(Debug)]
pub struct SliceWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
    overflow: bool,
}

impl<'a> SliceWriter<'a> {
    /// A writer at the start of `buf`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        SliceWriter {
            buf,
            len: 0,
            overflow: false,
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Room left.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.len
    }

    /// How many bytes were written, or [`EncodeError::NoRoom`] if anything did not fit.
    pub fn finish(self) -> Result<usize, EncodeError> {
        if self.overflow {
            Err(EncodeError::NoRoom)
        } else {
            Ok(self.len)
        }
    }
}

impl Writer for SliceWriter<'_> {
    fn write_all(&mut self, bytes: &[u8]) {
        if self.overflow || bytes.len() > self.remaining() {
            self.overflow = true;
            return;
        }
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }
}
