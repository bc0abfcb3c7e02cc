//! Reading and writing the urlencoded pieces of a request: query and form pairs, path segments.

use std::borrow::Cow;
use std::str::Utf8Error;

use percent_encoding::{AsciiSet, CONTROLS, NON_ALPHANUMERIC, percent_decode, percent_encode};

/// Everything but the RFC 3986 unreserved characters: what a value put into one path segment
/// must have encoded (so `/`, `?`, `#`, `%` and spaces cannot change the path's shape).
const SEGMENT_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// What a literal of a validated path template still needs encoded (non-ASCII is always encoded).
const SEGMENT_LITERAL: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Appends a literal template segment.
pub(crate) fn push_literal(out: &mut String, literal: &str) {
    out.extend(percent_encoding::utf8_percent_encode(
        literal,
        SEGMENT_LITERAL,
    ));
}

/// Appends a decoded value as one path segment: everything but unreserved characters is
/// percent-encoded, and the dot segments `.` and `..` are encoded too.
pub(crate) fn push_segment(out: &mut String, value: &[u8]) {
    match value {
        b"." => out.push_str("%2E"),
        b".." => out.push_str("%2E%2E"),
        _ => out.extend(percent_encode(value, SEGMENT_VALUE)),
    }
}

/// Appends a raw (percent-encoded as received) path segment, normalised so that it stays one
/// segment and cannot be a dot segment.
pub(crate) fn push_raw_segment(out: &mut String, raw: &str) {
    let plain = raw
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    if plain && raw != "." && raw != ".." {
        out.push_str(raw);
    } else {
        let decoded: Cow<'_, [u8]> = percent_decode(raw.as_bytes()).into();
        push_segment(out, &decoded);
    }
}

/// Decodes one `application/x-www-form-urlencoded` component (`+` is a space).
pub(crate) fn decode_form(raw: &[u8]) -> Result<Cow<'_, str>, Utf8Error> {
    if raw.contains(&b'+') {
        let replaced: Vec<u8> = raw
            .iter()
            .map(|&b| if b == b'+' { b' ' } else { b })
            .collect();
        let decoded: Vec<u8> = percent_decode(&replaced).collect();
        String::from_utf8(decoded)
            .map(Cow::Owned)
            .map_err(|e| e.utf8_error())
    } else {
        percent_decode(raw).decode_utf8()
    }
}

/// Whether a raw form name decodes to `name`.
pub(crate) fn name_is(raw: &[u8], name: &str) -> bool {
    if raw.contains(&b'%') || raw.contains(&b'+') {
        decode_form(raw).is_ok_and(|n| n == name)
    } else {
        raw == name.as_bytes()
    }
}

/// The non-empty `name=value` pairs of urlencoded data: `(raw pair, raw name, raw value)`.
pub(crate) fn pairs(data: &[u8]) -> impl Iterator<Item = (&[u8], &[u8], &[u8])> {
    data.split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.iter().position(|&b| b == b'=') {
            Some(i) => (pair, &pair[..i], &pair[i + 1..]),
            None => (pair, pair, &pair[pair.len()..]),
        })
}

/// Serialises `pairs` as urlencoded data, appended to the urlencoded data in `out` (with a `&`
/// when `out` is not empty).
pub(crate) fn append_pairs<'v>(
    out: &mut String,
    pairs: impl IntoIterator<Item = (&'v str, &'v str)>,
) {
    for (k, v) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        push_pair(out, k, v);
    }
}

/// Appends one urlencoded `name=value` pair (no separator), encoded exactly as
/// `form_urlencoded` encodes it.
pub(crate) fn push_pair(out: &mut String, name: &str, value: &str) {
    push_form_component(out, name);
    out.push('=');
    push_form_component(out, value);
}

/// One urlencoded component. Most names and values (ids, numbers, language tags) hold only the
/// bytes the encoding leaves alone and are copied as they are; others go through
/// `form_urlencoded`.
fn push_form_component(out: &mut String, s: &str) {
    let plain = s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'*' | b'-' | b'.' | b'_'));
    if plain {
        out.push_str(s);
    } else {
        out.extend(form_urlencoded::byte_serialize(s.as_bytes()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(v: &str) -> String {
        let mut s = String::new();
        push_segment(&mut s, v.as_bytes());
        s
    }

    fn raw_seg(v: &str) -> String {
        let mut s = String::new();
        push_raw_segment(&mut s, v);
        s
    }

    #[test]
    fn segments_cannot_escape() {
        assert_eq!(seg("../x"), "..%2Fx");
        assert_eq!(seg(".."), "%2E%2E");
        assert_eq!(seg("."), "%2E");
        assert_eq!(seg("a b?c#d%e"), "a%20b%3Fc%23d%25e");
        assert_eq!(seg("日本"), "%E6%97%A5%E6%9C%AC");
        assert_eq!(seg("a-b.c_d~e"), "a-b.c_d~e");
        assert_eq!(raw_seg("%2e%2E"), "%2E%2E");
        assert_eq!(raw_seg(".."), "%2E%2E");
        assert_eq!(raw_seg("a%2Fb"), "a%2Fb");
        assert_eq!(raw_seg("a%20b"), "a%20b");
        assert_eq!(raw_seg("plain-1"), "plain-1");
        assert_eq!(raw_seg("%ff%"), "%FF%25");
    }

    #[test]
    fn form_components() {
        assert_eq!(decode_form(b"a+b%2B").unwrap(), "a b+");
        assert!(decode_form(b"%ff").is_err());
        assert!(decode_form(b"%ff+").is_err());
        assert!(name_is(b"a%62", "ab"));
        assert!(name_is(b"ab", "ab"));
        assert!(!name_is(b"%ff", "ab"));
        let p: Vec<_> = pairs(b"a=1&&b&c=").collect();
        assert_eq!(
            p,
            [
                (&b"a=1"[..], &b"a"[..], &b"1"[..]),
                (b"b", b"b", b""),
                (b"c=", b"c", b"")
            ]
        );
    }

    #[test]
    fn pairs_are_encoded_like_form_urlencoded() {
        // Every ASCII byte, alone and in context, plus non-ASCII text: the fast path for plain
        // components must not change what `form_urlencoded` would write.
        let mut samples: Vec<String> = (0u8..128).map(|b| char::from(b).to_string()).collect();
        samples.extend(
            [
                "", "userId", "12345", "en-US", "a.b_c*d", "a b", "x&y=z", "日本", "100%", "+",
            ]
            .map(str::to_owned),
        );
        for name in &samples {
            for value in ["", "v", "a b", name.as_str()] {
                let mut ours = String::new();
                push_pair(&mut ours, name, value);
                let theirs = form_urlencoded::Serializer::new(String::new())
                    .append_pair(name, value)
                    .finish();
                assert_eq!(ours, theirs, "{name:?}={value:?}");
            }
        }
    }

    #[test]
    fn appending_pairs() {
        let mut s = String::new();
        append_pairs(&mut s, [("a b", "x&y")]);
        assert_eq!(s, "a+b=x%26y");
        append_pairs(&mut s, [("c", "")]);
        assert_eq!(s, "a+b=x%26y&c=");
    }
}
