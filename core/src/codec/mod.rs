//! Byte encoding and decoding: a [`Reader`] that never panics, a [`Writer`] trait, and the
//! [`Readable`]/[`Writeable`] traits every wire type implements.
//!
//! Decoding tells two failures apart: [`Error::Incomplete`] (the bytes so far are a valid
//! prefix; wait for more) and everything else (the bytes can never become valid). Framers
//! rely on that distinction to know when to wait and when to close a link.

mod error;
mod reader;
mod writer;

pub use error::{EncodeError, Error, Result};
pub use reader::Reader;
pub use writer::{SliceWriter, Writer, to_vec};

/// A type that can be decoded from a [`Reader`].
pub trait Readable: Sized {
    /// Decode one value from the front of `r`, advancing it past the value's bytes.
    fn take_from(r: &mut Reader<'_>) -> Result<Self>;
}

/// A type that can be encoded onto a [`Writer`].
pub trait Writeable {
    /// Append the encoding of `self` to `w`.
    ///
    /// Fails only when the value cannot be represented on the wire (e.g. a field longer
    /// than its length prefix allows) or the writer is out of room.
    fn write_onto<W: Writer + ?Sized>(&self, w: &mut W) -> core::result::Result<(), EncodeError>;
}

impl Readable for u8 {
    fn take_from(r: &mut Reader<'_>) -> Result<Self> {
        r.take_u8()
    }
}
impl Readable for u16 {
    fn take_from(r: &mut Reader<'_>) -> Result<Self> {
        r.take_u16()
    }
}
impl Readable for u32 {
    fn take_from(r: &mut Reader<'_>) -> Result<Self> {
        r.take_u32()
    }
}
impl Readable for u64 {
    fn take_from(r: &mut Reader<'_>) -> Result<Self> {
        r.take_u64()
    }
}
impl<const N: usize> Readable for [u8; N] {
    fn take_from(r: &mut Reader<'_>) -> Result<Self> {
        r.take_array()
    }
}

impl Writeable for u8 {
    fn write_onto<W: Writer + ?Sized>(&self, w: &mut W) -> core::result::Result<(), EncodeError> {
        w.write_u8(*self);
        Ok(())
    }
}
impl Writeable for u16 {
    fn write_onto<W: Writer + ?Sized>(&self, w: &mut W) -> core::result::Result<(), EncodeError> {
        w.write_u16(*self);
        Ok(())
    }
}
impl Writeable for u32 {
    fn write_onto<W: Writer + ?Sized>(&self, w: &mut W) -> core::result::Result<(), EncodeError> {
        w.write_u32(*self);
        Ok(())
    }
}
impl Writeable for u64 {
    fn write_onto<W: Writer + ?Sized>(&self, w: &mut W) -> core::result::Result<(), EncodeError> {
        w.write_u64(*self);
        Ok(())
    }
}
impl<const N: usize> Writeable for [u8; N] {
    fn write_onto<W: Writer + ?Sized>(&self, w: &mut W) -> core::result::Result<(), EncodeError> {
        w.write_all(self);
        Ok(())
    }
}
impl Writeable for [u8] {
    fn write_onto<W: Writer + ?Sized>(&self, w: &mut W) -> core::result::Result<(), EncodeError> {
        w.write_all(self);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
