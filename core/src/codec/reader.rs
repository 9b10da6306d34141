//! A cursor over a byte slice that never panics.

use super::{Error, Readable, Result};

/// Reads values from the front of a byte slice.
///
/// Every method checks its bounds and returns [`Error::Incomplete`] when the slice is too
/// short, leaving the reader where it was.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    off: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, off: 0 }
    }

    /// How many bytes have been consumed.
    pub fn consumed(&self) -> usize {
        self.off
    }

    /// How many bytes are left.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.off
    }

    /// The bytes not yet consumed, without consuming them.
    pub fn peek_rest(&self) -> &'a [u8] {
        &self.bytes[self.off..]
    }

    /// Fail with [`Error::ExtraBytes`] unless every byte has been consumed.
    pub fn should_be_exhausted(&self) -> Result<()> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(Error::ExtraBytes)
        }
    }

    /// The next `n` bytes, without consuming them.
    pub fn peek(&self, n: usize) -> Result<&'a [u8]> {
        let rem = self.remaining();
        if n > rem {
            return Err(Error::Incomplete { deficit: n - rem });
        }
        Ok(&self.bytes[self.off..self.off + n])
    }

    /// Consume and return the next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let b = self.peek(n)?;
        self.off += n;
        Ok(b)
    }

    /// Consume `n` bytes and ignore them.
    pub fn advance(&mut self, n: usize) -> Result<()> {
        self.take(n).map(|_| ())
    }

    /// Consume and return every remaining byte.
    pub fn take_rest(&mut self) -> &'a [u8] {
        let b = &self.bytes[self.off..];
        self.off = self.bytes.len();
        b
    }

    /// Consume the next `N` bytes as an array.
    pub fn take_array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// Consume one byte.
    pub fn take_u8(&mut self) -> Result<u8> {
        Ok(self.take_array::<1>()?[0])
    }

    /// Consume a big-endian u16.
    pub fn take_u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes(self.take_array()?))
    }

    /// Consume a big-endian u32.
    pub fn take_u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.take_array()?))
    }

    /// Consume a big-endian u64.
    pub fn take_u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.take_array()?))
    }

    /// Decode one `T`.
    pub fn extract<T: Readable>(&mut self) -> Result<T> {
        T::take_from(self)
    }

    /// Consume a one-byte length `n`, then `n` bytes.
    pub fn take_u8_prefixed(&mut self) -> Result<&'a [u8]> {
        let start = self.off;
        let n = self.take_u8()? as usize;
        self.take(n).inspect_err(|_| self.off = start)
    }

    /// Consume a two-byte length `n`, then `n` bytes.
    pub fn take_u16_prefixed(&mut self) -> Result<&'a [u8]> {
        let start = self.off;
        let n = self.take_u16()? as usize;
        self.take(n).inspect_err(|_| self.off = start)
    }

    /// Decode a value that must fill exactly the next `len` bytes: the nested reader sees
    /// only those bytes, and anything it leaves is [`Error::ExtraBytes`]. A short nested
    /// value is an error of the value, not a reason to wait, so "incomplete" inside the
    /// nested bytes becomes "invalid".
    pub fn read_nested<T>(
        &mut self,
        len: usize,
        f: impl FnOnce(&mut Reader<'a>) -> Result<T>,
    ) -> Result<T> {
        let inner = self.peek(len)?;
        let mut r = Reader::new(inner);
        let v = f(&mut r).map_err(Error::truncated)?;
        r.should_be_exhausted()?;
        self.off += len;
        Ok(v)
    }

    /// Consume a one-byte length, then decode a value that fills exactly that many bytes.
    pub fn read_nested_u8len<T>(
        &mut self,
        f: impl FnOnce(&mut Reader<'a>) -> Result<T>,
    ) -> Result<T> {
        let start = self.off;
        let n = self.take_u8()? as usize;
        self.read_nested(n, f).inspect_err(|_| self.off = start)
    }

    /// Consume a two-byte length, then decode a value that fills exactly that many bytes.
    pub fn read_nested_u16len<T>(
        &mut self,
        f: impl FnOnce(&mut Reader<'a>) -> Result<T>,
    ) -> Result<T> {
        let start = self.off;
        let n = self.take_u16()? as usize;
        self.read_nested(n, f).inspect_err(|_| self.off = start)
    }
}
