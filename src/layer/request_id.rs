//! Request ids in the gateway's format: an upper-case UUID.

/// A new request id such as `0AA90E87-3506-4AA6-AFFB-A4D53B4F6231` (random, version 4 layout).
///
/// Request ids need to be unique, not secret, so a fast thread-local generator is used.
#[must_use]
pub(crate) fn new_request_id() -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut b = fastrand::u128(..).to_be_bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut s = String::with_capacity(36);
    for (i, x) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push(char::from(HEX[usize::from(x >> 4)]));
        s.push(char::from(HEX[usize::from(x & 0xf)]));
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn format() {
        let id = super::new_request_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(
            id.chars()
                .all(|c| c == '-' || c.is_ascii_digit() || c.is_ascii_uppercase())
        );
        assert_ne!(id, super::new_request_id());
    }
}
