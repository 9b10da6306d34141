use super::*;
use alloc::vec::Vec;

#[test]
fn integers_are_big_endian() {
    let mut w = Vec::new();
    w.write_u8(1);
    w.write_u16(0x0203);
    w.write_u32(0x0405_0607);
    w.write_u64(0x0809_0a0b_0c0d_0e0f);
    assert_eq!(w, (1u8..=15).collect::<Vec<_>>());
    let mut r = Reader::new(&w);
    assert_eq!(r.take_u8(), Ok(1));
    assert_eq!(r.take_u16(), Ok(0x0203));
    assert_eq!(r.take_u32(), Ok(0x0405_0607));
    assert_eq!(r.take_u64(), Ok(0x0809_0a0b_0c0d_0e0f));
    assert!(r.should_be_exhausted().is_ok());
}

#[test]
fn short_input_is_incomplete_and_does_not_advance() {
    let mut r = Reader::new(&[1, 2, 3]);
    assert_eq!(r.take_u32(), Err(Error::Incomplete { deficit: 1 }));
    assert_eq!(r.consumed(), 0);
    assert_eq!(r.take_u8_prefixed(), Ok(&[2][..]));
    assert_eq!(r.take_u16(), Err(Error::Incomplete { deficit: 1 }));
    assert_eq!(r.take_u8(), Ok(3));
}

#[test]
fn prefixed_fields_rewind_on_failure() {
    // Length 5 but only 2 bytes follow.
    let mut r = Reader::new(&[5, 0xaa, 0xbb]);
    assert_eq!(r.take_u8_prefixed(), Err(Error::Incomplete { deficit: 3 }));
    assert_eq!(r.consumed(), 0);
    let mut r = Reader::new(&[0, 2, 0xaa, 0xbb, 0xcc]);
    assert_eq!(r.take_u16_prefixed(), Ok(&[0xaa, 0xbb][..]));
    assert_eq!(r.take_rest(), &[0xcc]);
}

#[test]
fn nested_reads_must_fill_their_length() {
    let bytes = [3u8, 1, 2, 3, 9];
    let mut r = Reader::new(&bytes);
    let v = r.read_nested_u8len(|n| n.take_u16()).unwrap_err();
    assert_eq!(v, Error::ExtraBytes);
    assert_eq!(r.consumed(), 0);
    let v = r.read_nested_u8len(|n| n.take_u32()).unwrap_err();
    assert!(
        !v.is_incomplete(),
        "a short nested value is invalid, not incomplete"
    );
    let v = r.read_nested_u8len(|n| Ok(n.take_rest().to_vec())).unwrap();
    assert_eq!(v, [1, 2, 3]);
    assert_eq!(r.take_u8(), Ok(9));
}

#[test]
fn slice_writer_reports_overflow() {
    let mut buf = [0u8; 4];
    let mut w = SliceWriter::new(&mut buf);
    w.write_u16(7);
    assert_eq!(w.remaining(), 2);
    w.write_u32(1);
    assert_eq!(w.finish(), Err(EncodeError::NoRoom));
    let mut w = SliceWriter::new(&mut buf);
    w.write_u32(0xdead_beef);
    assert_eq!(w.finish(), Ok(4));
    assert_eq!(buf, [0xde, 0xad, 0xbe, 0xef]);
}

#[test]
fn prefixed_writes_check_length() {
    let mut w = Vec::new();
    assert!(w.write_u8_prefixed(&[0u8; 256]).is_err());
    assert!(w.write_u8_prefixed(&[0u8; 255]).is_ok());
    assert_eq!(w.len(), 256);
}

#[test]
fn reader_never_panics() {
    bolero::check!().for_each(|input: &[u8]| {
        let mut r = Reader::new(input);
        let _ = r.take_u16_prefixed();
        let _ = r.read_nested_u8len(|n| n.take_u32());
        let _ = r.take_u64();
        let _ = r.peek(usize::MAX);
        let _ = r.take(usize::MAX);
        let _ = r.take_rest();
        assert!(r.should_be_exhausted().is_ok());
    });
}
