//! gzip framing (RFC 1952) around miniz_oxide's raw deflate, so profiles
//! leave the process gzipped as Go's runtime/pprof writes them
//! (`gzip.NewWriterLevel(w, gzip.BestSpeed)`): `go tool pprof` and every
//! other pprof reader expect that. The header and trailer are a few bytes
//! and a CRC-32, not worth a crate.

/// gzip's magic bytes, then deflate (8) as the method.
const MAGIC: [u8; 3] = [0x1f, 0x8b, 8];
/// Header byte XFL: 4 says "fastest compression", as Go's BestSpeed writes.
const XFL_FASTEST: u8 = 4;
/// Header byte OS: 255 is "unknown", which Go's gzip writer sends.
const OS_UNKNOWN: u8 = 255;
/// Deflate level 1, Go's `gzip.BestSpeed`: profiles are written while
/// the program serves, so speed matters more than the last bytes.
const BEST_SPEED: u8 = 1;

/// The CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320) gzip's
/// trailer carries, one table lookup per byte.
pub(crate) fn crc32(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (n, e) in t.iter_mut().enumerate() {
            let mut c = n as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *e = c;
        }
        t
    });
    !data.iter().fold(!0u32, |c, &b| {
        table[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8)
    })
}

/// `data` as one gzip member: a 10-byte header with no name and no
/// time, the deflate stream, then the CRC-32 and the length mod 2^32.
pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
    let deflated = miniz_oxide::deflate::compress_to_vec(data, BEST_SPEED);
    let mut out = Vec::with_capacity(deflated.len() + 18);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[0, 0, 0, 0, 0, XFL_FASTEST, OS_UNKNOWN]);
    out.extend_from_slice(&deflated);
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// The data of a single gzip member, checked against its trailer: for
/// the test decoder. Header flags (a name, a comment, extra fields, a
/// header CRC) are skipped, so files from other writers read too.
pub(crate) fn gunzip(gz: &[u8]) -> Result<Vec<u8>, String> {
    if gz.len() < 18 || gz[..3] != MAGIC {
        return Err("not gzip (bad magic or too short)".into());
    }
    let body_start = header_len(gz)?;
    let trailer = gz.len() - 8;
    if body_start > trailer {
        return Err("gzip header runs into the trailer".into());
    }
    let data = miniz_oxide::inflate::decompress_to_vec(&gz[body_start..trailer])
        .map_err(|e| format!("inflate: {e:?}"))?;
    let word = |at: usize| u32::from_le_bytes([gz[at], gz[at + 1], gz[at + 2], gz[at + 3]]);
    if word(trailer) != crc32(&data) {
        return Err("gzip CRC-32 mismatch".into());
    }
    if word(trailer + 4) != data.len() as u32 {
        return Err("gzip length mismatch".into());
    }
    Ok(data)
}

/// Where the deflate stream starts: after the fixed 10 bytes and the
/// optional parts the flags byte announces.
fn header_len(gz: &[u8]) -> Result<usize, String> {
    const FHCRC: u8 = 2;
    const FEXTRA: u8 = 4;
    const FNAME: u8 = 8;
    const FCOMMENT: u8 = 16;
    let flags = gz[3];
    let mut at = 10;
    if flags & FEXTRA != 0 {
        let n = gz.get(at..at + 2).ok_or("truncated gzip extra field")?;
        at += 2 + usize::from(u16::from_le_bytes([n[0], n[1]]));
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let nul = gz.get(at..).and_then(|r| r.iter().position(|&b| b == 0));
            at += nul.ok_or("unterminated gzip header string")? + 1;
        }
    }
    if flags & FHCRC != 0 {
        at += 2;
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_check_value() {
        // The standard check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn round_trip() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let gz = gzip(&data);
        assert_eq!(&gz[..3], &MAGIC);
        assert_eq!(gunzip(&gz).unwrap(), data);
        let mut bad = gz.clone();
        let n = bad.len();
        bad[n - 8] ^= 1;
        assert!(gunzip(&bad).is_err());
    }
}
