//! Lower-case hexadecimal, as lastmile writes digests, keys and ids: a table lookup per
//! nibble (formatting each byte with `{:02x}` costs a formatter call per byte, and a
//! response digest is written on every call).

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// The hex digits of `bytes` into `out`, which must be twice as long (the rest of a
/// longer `out` is left as it was).
pub fn encode_to(bytes: &[u8], out: &mut [u8]) {
    for (pair, byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0x0f)];
    }
}

/// `bytes` as lower-case hex.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = vec![0u8; bytes.len() * 2];
    encode_to(bytes, &mut out);
    // Only ASCII digits were written: the check cannot fail.
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_two_lower_case_digits_per_byte() {
        assert_eq!(encode(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(encode(&[]), "");
        let mut out = [b'.'; 6];
        encode_to(&[0xde, 0xad], &mut out);
        assert_eq!(&out, b"dead..");
    }
}
