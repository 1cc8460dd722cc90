//! Tokens compared in constant time (API write token, ward/team report tokens).

use subtle::ConstantTimeEq;

/// Constant-time equality that does not stop early on a length mismatch.
pub fn equal(presented: &[u8], expected: &[u8]) -> bool {
    let mut padded = vec![0u8; expected.len()];
    let n = presented.len().min(expected.len());
    padded[..n].copy_from_slice(&presented[..n]);
    let same_bytes = padded.ct_eq(expected);
    let same_len = (presented.len() as u64).ct_eq(&(expected.len() as u64));
    (same_bytes & same_len).into()
}

#[cfg(test)]
mod tests {
    use super::equal;

    #[test]
    fn equality() {
        assert!(equal(b"abc", b"abc"));
        assert!(!equal(b"ab", b"abc"));
        assert!(!equal(b"abcd", b"abc"));
        assert!(!equal(b"abd", b"abc"));
        assert!(!equal(b"", b"abc"));
    }
}
