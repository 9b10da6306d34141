//! The small encodings directory documents use: base64 (padded or not), hex, and the
//! `YYYY-MM-DD HH:MM:SS` UTC timestamps, turned into Unix seconds without a clock.

use alloc::string::String;
use alloc::vec::Vec;

/// The value of one base64 digit, `None` for anything else.
fn b64_digit(c: u8) -> Option<u32> {
    match c {
        b'A'..=b'Z' => Some(u32::from(c - b'A')),
        b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
        b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// Decodes standard base64, with or without `=` padding (Tor omits it in consensus
/// digests and keys). Whitespace is not accepted: callers join object lines first.
/// `None` on a bad digit, a bad length, or non-zero trailing bits.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    let unpadded = {
        let mut end = bytes.len();
        let mut pads = 0;
        while end > 0 && bytes.get(end - 1) == Some(&b'=') {
            end -= 1;
            pads += 1;
        }
        if pads > 2 || (pads > 0 && !bytes.len().is_multiple_of(4)) {
            return None;
        }
        bytes.get(..end)?
    };
    if unpadded.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(unpadded.len() / 4 * 3 + 2);
    for chunk in unpadded.chunks(4) {
        let mut acc: u32 = 0;
        for &c in chunk {
            acc = (acc << 6) | b64_digit(c)?;
        }
        match chunk.len() {
            4 => out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]),
            3 => {
                if acc & 0x3 != 0 {
                    return None;
                }
                out.extend_from_slice(&[(acc >> 10) as u8, (acc >> 2) as u8]);
            }
            2 => {
                if acc & 0xf != 0 {
                    return None;
                }
                out.push((acc >> 4) as u8);
            }
            _ => return None,
        }
    }
    Some(out)
}

/// Decodes base64 that must hold exactly `N` bytes.
pub fn base64_decode_array<const N: usize>(s: &str) -> Option<[u8; N]> {
    base64_decode(s)?.try_into().ok()
}

/// Encodes standard base64 without `=` padding, as Tor writes digests in URLs and
/// consensus `m` lines.
pub fn base64_encode_unpadded(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let acc = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let digits = chunk.len() + 1;
        for i in 0..digits {
            let idx = (acc >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(ALPHABET[idx as usize]));
        }
    }
    out
}

/// Decodes hex (either case) that must hold exactly `N` bytes.
pub fn hex_decode_array<const N: usize>(s: &str) -> Option<[u8; N]> {
    let bytes = s.as_bytes();
    if bytes.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let hi = char::from(pair[0]).to_digit(16)?;
        let lo = char::from(pair[1]).to_digit(16)?;
        *o = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// Encodes bytes as upper-case hex, as Tor writes fingerprints.
pub fn hex_encode_upper(data: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(data.len() * 2);
    for &b in data {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// Parses exactly `len` ASCII digits.
fn digits(s: &str, len: usize) -> Option<u32> {
    if s.len() != len || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (the civil-from-days
/// inverse, valid for every year this parser accepts).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Whether `year` is a Gregorian leap year.
fn is_leap(year: u32) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

/// Parses Tor's UTC timestamp, given as its two space-separated halves
/// (`2024-01-31` and `23:59:59`), into seconds since the Unix epoch. Years before 1970
/// are refused: no directory document predates Tor.
pub fn parse_datetime(date: &str, time: &str) -> Option<u64> {
    let mut d = date.split('-');
    let year = digits(d.next()?, 4)?;
    let month = digits(d.next()?, 2)?;
    let day = digits(d.next()?, 2)?;
    if d.next().is_some() {
        return None;
    }
    let mut t = time.split(':');
    let hour = digits(t.next()?, 2)?;
    let minute = digits(t.next()?, 2)?;
    let second = digits(t.next()?, 2)?;
    if t.next().is_some() {
        return None;
    }
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => return None,
    };
    // Tor never writes leap seconds; 60 is refused like any other out-of-range field.
    if year < 1970 || day == 0 || day > month_days || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    u64::try_from(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_and_accepts_padding() {
        for len in 0..20 {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + 5) as u8).collect();
            let enc = base64_encode_unpadded(&data);
            assert_eq!(base64_decode(&enc).unwrap(), data);
            let mut padded = enc.clone();
            while !padded.len().is_multiple_of(4) {
                padded.push('=');
            }
            assert_eq!(base64_decode(&padded).unwrap(), data);
        }
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_encode_unpadded(b"hello"), "aGVsbG8");
    }

    #[test]
    fn base64_rejects_junk() {
        assert!(base64_decode("a").is_none());
        assert!(base64_decode("aGVsbG8==").is_none());
        assert!(base64_decode("aGV sbG8").is_none());
        assert!(
            base64_decode("aGVsbG9=").is_none(),
            "non-zero trailing bits"
        );
        assert!(base64_decode("====").is_none());
    }

    #[test]
    fn hex_round_trips() {
        let fp = hex_decode_array::<4>("0aFf10B2").unwrap();
        assert_eq!(fp, [0x0a, 0xff, 0x10, 0xb2]);
        assert_eq!(hex_encode_upper(&fp), "0AFF10B2");
        assert!(hex_decode_array::<4>("0aFf10B").is_none());
        assert!(hex_decode_array::<2>("0g00").is_none());
        assert!(hex_decode_array::<2>("+1+1").is_none());
    }

    #[test]
    fn datetime_known_answers() {
        assert_eq!(parse_datetime("1970-01-01", "00:00:00"), Some(0));
        assert_eq!(parse_datetime("2000-03-01", "00:00:00"), Some(951_868_800));
        assert_eq!(
            parse_datetime("2024-02-29", "12:34:56"),
            Some(1_709_210_096)
        );
        assert_eq!(
            parse_datetime("2038-01-19", "03:14:07"),
            Some(2_147_483_647)
        );
        assert_eq!(
            parse_datetime("2026-11-25", "10:49:50"),
            Some(1_795_603_790)
        );
        assert_eq!(parse_datetime("2023-02-29", "00:00:00"), None);
        assert_eq!(parse_datetime("1900-02-28", "00:00:00"), None);
        assert_eq!(parse_datetime("2024-13-01", "00:00:00"), None);
        assert_eq!(parse_datetime("2024-01-01", "24:00:00"), None);
        assert_eq!(parse_datetime("2024-01-01", "23:59:60"), None);
        assert_eq!(parse_datetime("2024-1-01", "00:00:00"), None);
        assert_eq!(parse_datetime("+024-01-01", "00:00:00"), None);
        assert_eq!(parse_datetime("2024-01-01", "00:00:00:00"), None);
    }

    #[test]
    fn never_panics() {
        bolero::check!().for_each(|input: &[u8]| {
            if let Ok(s) = core::str::from_utf8(input) {
                let _ = base64_decode(s);
                let _ = hex_decode_array::<20>(s);
                if let Some((a, b)) = s.split_once(' ') {
                    let _ = parse_datetime(a, b);
                }
            }
        });
    }
}
