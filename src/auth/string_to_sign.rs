//! The client-signature string-to-sign, as Alibaba Cloud API Gateway's documentation ("Use
//! digest authentication to call an API") and its official SDKs build it.

use std::borrow::Cow;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use smallvec::SmallVec;

use crate::swar::{any_high, first_flagged, flag_bytes};

/// Header names that never enter the signed-headers block (compared case-insensitively):
/// the signature headers themselves and the four fixed lines.
const EXCLUDED_SIGNED_HEADERS: [&str; 6] = [
    "x-ca-signature",
    "x-ca-signature-headers",
    "accept",
    "content-md5",
    "content-type",
    "date",
];

/// `X-Ca-Signature-Headers`: the comma-separated list of headers the client signed.
pub(crate) const SIGNATURE_HEADERS: &str = "x-ca-signature-headers";

/// Whether the request body is an urlencoded form whose parameters enter the string-to-sign.
///
/// True when `Content-Type` starts with `application/x-www-form-urlencoded` (ASCII
/// case-insensitively); callers then pass the buffered body to [`string_to_sign`].
///
/// # Examples
///
/// ```
/// use http::{HeaderMap, HeaderValue, header::CONTENT_TYPE};
/// let mut headers = HeaderMap::new();
/// assert!(!stagegate::auth::is_form(&headers));
/// headers.insert(
///     CONTENT_TYPE,
///     HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
/// );
/// assert!(stagegate::auth::is_form(&headers));
/// ```
#[must_use]
pub fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(is_form_type)
}

/// Whether a `Content-Type` value is an urlencoded form (see [`is_form`]).
pub(crate) fn is_form_type(content_type: &HeaderValue) -> bool {
    const FORM: &[u8] = b"application/x-www-form-urlencoded";
    let ct = content_type.as_bytes();
    ct.len() >= FORM.len() && ct[..FORM.len()].eq_ignore_ascii_case(FORM)
}

/// The names of the four fixed lines, in order.
static FIXED_LINES: [HeaderName; 4] = [
    http::header::ACCEPT,
    HeaderName::from_static("content-md5"),
    http::header::CONTENT_TYPE,
    http::header::DATE,
];

/// `X-Ca-Signature-Headers`, parsed once (lookups by a pre-parsed name skip re-validating it).
static SIGNATURE_HEADERS_NAME: HeaderName = HeaderName::from_static(SIGNATURE_HEADERS);

/// The header values a string-to-sign reads, each looked up once.
#[derive(Debug, Default)]
pub(crate) struct SignedHeaders<'h> {
    /// `Accept`, `Content-MD5`, `Content-Type` and `Date` (first values).
    pub(crate) fixed: [Option<&'h HeaderValue>; 4],
    /// The names listed in `X-Ca-Signature-Headers` ([`signed_header_names`]) and, once
    /// [`resolve`](Self::resolve)d, their first values.
    pub(crate) signed: SignedNames<'h>,
}

/// The names listed in `X-Ca-Signature-Headers` with their values once resolved; real
/// clients sign a handful, kept inline.
pub(crate) type SignedNames<'h> = SmallVec<[(Cow<'h, str>, Option<&'h HeaderValue>); 8]>;

impl<'h> SignedHeaders<'h> {
    /// Everything looked up in `headers` (the client-side path).
    fn of(headers: &'h HeaderMap) -> Self {
        let mut this = Self {
            fixed: FIXED_LINES.each_ref().map(|n| headers.get(n)),
            signed: signed_header_names(headers.get(&SIGNATURE_HEADERS_NAME)),
        };
        this.resolve(headers);
        this
    }

    /// Finds the values of the signed names in one pass over `headers`.
    ///
    /// A listed name equal to a header's name ignoring ASCII case is exactly a name that
    /// `HeaderMap::get` would find (header names are stored lower-case), and the first
    /// value met is the one `get` returns.
    pub(crate) fn resolve(&mut self, headers: &'h HeaderMap) {
        let mut missing = self.signed.len();
        if missing == 0 {
            return;
        }
        for (name, value) in headers {
            for (listed, found) in &mut self.signed {
                // Lengths first: most pairs differ in length, and this stays inline. Then
                // the bytes as they are (clients mostly list lower-case names, and `memcmp`
                // is cheap), and only then ignoring case.
                let name = name.as_str();
                if found.is_none()
                    && listed.len() == name.len()
                    && (listed.as_bytes() == name.as_bytes() || listed.eq_ignore_ascii_case(name))
                {
                    *found = Some(value);
                    missing -= 1;
                }
            }
            if missing == 0 {
                return;
            }
        }
    }
}

/// The header names listed in `X-Ca-Signature-Headers` (`list`), spelled as the client
/// listed them, minus the excluded names, sorted bytewise and deduplicated; no values yet.
pub(crate) fn signed_header_names(list: Option<&HeaderValue>) -> SignedNames<'_> {
    let Some(list) = list else {
        return SignedNames::new();
    };
    let list = match std::str::from_utf8(list.as_bytes()) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(list.as_bytes()),
    };
    // A header value holds no ASCII whitespace but space and tab, so for an ASCII list
    // (every real client's) `trim_ascii` is exactly `str::trim`, without decoding chars.
    let ascii = list.is_ascii();
    let mut names = SignedNames::new();
    match list {
        Cow::Borrowed(list) => {
            for_each_listed(list, ascii, |n| names.push((Cow::Borrowed(n), None)));
        }
        // Rare (a list that is not UTF-8): the names must outlive the converted list.
        Cow::Owned(list) => {
            for_each_listed(&list, ascii, |n| {
                names.push((Cow::Owned(n.to_owned()), None));
            });
        }
    }
    names.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    names.dedup_by(|a, b| a.0 == b.0);
    names
}

/// Calls `f` with each trimmed, signable name of a comma-separated list (`ascii`: the
/// list is ASCII, where trimming needs no char decoding).
fn for_each_listed<'l>(list: &'l str, ascii: bool, mut f: impl FnMut(&'l str)) {
    let mut start = 0;
    loop {
        // `,` is ASCII, so every cut is on a char boundary.
        let end = find_byte(b',', &list.as_bytes()[start..]).map(|i| start + i);
        let piece = &list[start..end.unwrap_or(list.len())];
        let name = if ascii {
            piece.trim_ascii()
        } else {
            piece.trim()
        };
        if is_signable(name) {
            f(name);
        }
        match end {
            Some(end) => start = end + 1,
            None => return,
        }
    }
}

fn is_signable(name: &str) -> bool {
    !name.is_empty()
        && !EXCLUDED_SIGNED_HEADERS
            .iter()
            .any(|excluded| excluded.eq_ignore_ascii_case(name))
}

/// Builds the exact string-to-sign of a request, as the official SDKs do.
///
/// Lines: the method; the values of `Accept`, `Content-MD5`, `Content-Type` and `Date`
/// (each line kept when empty); one `name:value` line per header listed in
/// `X-Ca-Signature-Headers` (spelled as listed, sorted bytewise); then the raw path and,
/// when there are parameters, `?` and the sorted `k=v` (or bare `k`) pairs of the query
/// and, when `form_body` is given, of the urlencoded form body. Values are URL-decoded
/// (`+` is a space); a repeated key keeps its first value; a form value wins over a query
/// value. Pass `form_body` only when [`is_form`] holds.
///
/// # Examples
///
/// ```
/// use http::{HeaderMap, HeaderValue, Method, Uri};
/// let mut headers = HeaderMap::new();
/// headers.insert("accept", HeaderValue::from_static("application/json"));
/// headers.insert("x-ca-key", HeaderValue::from_static("203753385"));
/// headers.insert("x-ca-signature-headers", HeaderValue::from_static("x-ca-key"));
/// let uri: Uri = "/demo/get?b=2&a=1&empty=".parse().unwrap();
/// let sts = stagegate::auth::string_to_sign(&Method::GET, &uri, &headers, None);
/// assert_eq!(sts, "GET\napplication/json\n\n\n\nx-ca-key:203753385\n/demo/get?a=1&b=2&empty");
/// ```
#[must_use]
pub fn string_to_sign(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    form_body: Option<&[u8]>,
) -> String {
    into_text(string_to_sign_with_headers(
        method,
        uri,
        &SignedHeaders::of(headers),
        form_body,
    ))
}

/// A string-to-sign built as bytes, as text (invalid UTF-8 replaced).
pub(crate) fn into_text(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// A query or form parameter: the decoded key (it decides the order and which duplicate
/// wins) and the raw value, decoded only when it is written out.
struct Param<'a> {
    /// The key's first 8 bytes, big-endian and zero-padded: unequal prefixes order two keys
    /// as their bytes do, so most comparisons of a sort touch no slice.
    prefix: u64,
    /// The decoded key: UTF-8 (invalid sequences replaced), kept as bytes.
    key: Cow<'a, [u8]>,
    value: &'a [u8],
    /// 0 for the form body, 1 for the query: a form value wins over a query value.
    rank: u8,
}

impl<'a> Param<'a> {
    /// `raw_key` (its `+` already spaces) decoded, with `word`: the eight bytes the input
    /// holds from the key on, when it holds eight, as a little-endian word.
    fn new(raw_key: &'a [u8], word: Option<u64>, value: &'a [u8], rank: u8) -> Self {
        // A key of up to eight bytes is checked and ordered from one word: its bytes, the
        // rest zeroed (a zero is neither a `%` nor a high byte).
        if let Some(word) = word
            && raw_key.len() <= 8
        {
            // at most 64 (an empty key keeps nothing)
            #[allow(clippy::cast_possible_truncation)]
            let drop = 8 * (8 - raw_key.len()) as u32;
            let head = word & u64::MAX.checked_shr(drop).unwrap_or(0);
            if flag_bytes(head, b'%') == 0 && !any_high(head) {
                return Self {
                    prefix: head.swap_bytes(),
                    key: Cow::Borrowed(raw_key),
                    value,
                    rank,
                };
            }
        }
        let key = decode_key(raw_key);
        let mut prefix = 0u64;
        for (i, &b) in key.iter().take(8).enumerate() {
            prefix |= u64::from(b) << (56 - 8 * i);
        }
        Self {
            prefix,
            key,
            value,
            rank,
        }
    }
}

/// [`decode`] of a parameter key whose `+` are already spaces, as bytes, borrowing plain
/// ASCII keys without a UTF-8 check.
fn decode_key(input: &[u8]) -> Cow<'_, [u8]> {
    if input.is_ascii() && find_byte(b'%', input).is_none() {
        return Cow::Borrowed(input);
    }
    match decode(input) {
        Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
        Cow::Owned(s) => Cow::Owned(s.into_bytes()),
    }
}

/// [`string_to_sign`] with the header values already looked up (and resolved), as bytes.
///
/// The text is assembled as bytes; the signature is computed over them and they are
/// converted to UTF-8 ([`into_text`]) only when text is needed (the signer, or a mismatch's
/// error message). Every piece (header value, decoded parameter value) is followed by an
/// ASCII separator or the end, and an ASCII byte always ends an invalid UTF-8 sequence, so
/// converting the whole with replacement characters gives exactly the same text as
/// converting each piece; and for valid UTF-8 the bytes are the text.
pub(crate) fn string_to_sign_with_headers(
    method: &Method,
    uri: &Uri,
    headers: &SignedHeaders<'_>,
    form_body: Option<&[u8]>,
) -> Vec<u8> {
    let query = uri.query().map(str::as_bytes);
    // The form body and the query with every `+` already a space, in one pass over each
    // (vectorized): values are then only unescaped as they are written out. Splitting on `&`
    // and `=` is unchanged by it, and so is each key's and value's decoding (`+` is turned
    // into a space before escapes are decoded, so an escaped `+` stays a `+`).
    // on the stack for a query or a small form
    let mut spaced: SmallVec<[u8; 256]> =
        SmallVec::with_capacity(form_body.map_or(0, <[u8]>::len) + query.map_or(0, <[u8]>::len));
    spaced.extend(form_body.unwrap_or_default().iter().map(plus_to_space));
    let form_len = spaced.len();
    spaced.extend(query.unwrap_or_default().iter().map(plus_to_space));
    let (form_spaced, query_spaced) = spaced.split_at(form_len);
    let sources = [
        (form_body.map(|_| form_spaced), 0),
        (query.map(|_| query_spaced), 1),
    ];
    let pair_count: usize = sources
        .iter()
        .filter_map(|(s, _)| *s)
        .map(|s| memchr::memchr_iter(b'&', s).count() + 1)
        .sum();
    let mut params: SmallVec<[Param<'_>; 32]> = SmallVec::with_capacity(pair_count);
    for (source, rank) in sources {
        if let Some(source) = source {
            params
                .extend(raw_pairs(source).map(|(k, value, word)| Param::new(k, word, value, rank)));
        }
    }
    // The order sorted as (key prefix, arrival) pairs, which move cheaply; equal keys are
    // ordered by rank, then arrival, so the first of equal keys wins.
    let mut order: SmallVec<[(u64, u32); 32]> = params
        .iter()
        .zip(0u32..)
        .map(|(p, i)| (p.prefix, i))
        .collect();
    order.sort_unstable();
    // Keys sharing their first eight bytes (rare) are put in order within their run.
    let mut run = 0;
    while run < order.len() {
        let prefix = order[run].0;
        let end = run + order[run..].iter().take_while(|o| o.0 == prefix).count();
        if end - run > 1 {
            order[run..end].sort_unstable_by(|&(_, a), &(_, b)| {
                let (p, q) = (&params[a as usize], &params[b as usize]);
                p.key.cmp(&q.key).then(p.rank.cmp(&q.rank)).then(a.cmp(&b))
            });
        }
        run = end;
    }

    let path = uri.path();
    let m = method.as_str();
    let mut out: Vec<u8> = Vec::with_capacity(
        m.len()
            + 5
            + headers
                .fixed
                .iter()
                .flatten()
                .map(|v| v.len())
                .sum::<usize>()
            + headers
                .signed
                .iter()
                .map(|(n, v)| n.len() + v.map_or(0, HeaderValue::len) + 2)
                .sum::<usize>()
            + path.len()
            + query.map_or(0, <[u8]>::len)
            + form_body.map_or(0, <[u8]>::len)
            + 2,
    );
    out.extend_from_slice(m.as_bytes());
    out[..m.len()].make_ascii_uppercase();
    out.push(b'\n');
    for value in &headers.fixed {
        if let Some(v) = value {
            out.extend_from_slice(v.as_bytes());
        }
        out.push(b'\n');
    }
    for (name, value) in &headers.signed {
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        // The first value if repeated, empty if absent (or not a valid header name).
        if let Some(v) = value {
            out.extend_from_slice(v.as_bytes());
        }
        out.push(b'\n');
    }
    out.extend_from_slice(path.as_bytes());
    let mut previous: Option<&Param<'_>> = None;
    for p in order.iter().map(|&(_, i)| &params[i as usize]) {
        if previous.is_some_and(|q| q.prefix == p.prefix && q.key == p.key) {
            continue;
        }
        out.push(if previous.is_none() { b'?' } else { b'&' });
        previous = Some(p);
        out.extend_from_slice(&p.key);
        // Decoding never empties a non-empty value.
        if !p.value.is_empty() {
            out.push(b'=');
            unescape_into(&mut out, p.value);
        }
    }
    out
}

/// The raw `(key, value)` byte slices of an `application/x-www-form-urlencoded` input,
/// split exactly as `form_urlencoded::parse` splits it.
///
/// Each pair comes with the eight bytes the input holds from its key on, when it holds
/// eight, as a little-endian word (for [`Param::new`]).
fn raw_pairs(input: &[u8]) -> impl Iterator<Item = (&[u8], &[u8], Option<u64>)> {
    let mut rest = Some(input);
    std::iter::from_fn(move || {
        loop {
            let r = rest?;
            let pair = match find_byte(b'&', r) {
                Some(i) => {
                    rest = Some(&r[i + 1..]);
                    &r[..i]
                }
                None => {
                    rest = None;
                    r
                }
            };
            if !pair.is_empty() {
                let word = r.first_chunk::<8>().map(|w| u64::from_le_bytes(*w));
                return Some(match find_byte(b'=', pair) {
                    Some(i) => (&pair[..i], &pair[i + 1..], word),
                    None => (pair, &[][..], word),
                });
            }
        }
    })
}

/// The first `needle` in `hay`. Keys and values are short, so the first 64 bytes are searched
/// eight at a time in registers ([`flag_bytes`]), without a call; only the rest of a longer
/// input goes to `memchr`.
#[inline(always)]
fn find_byte(needle: u8, hay: &[u8]) -> Option<usize> {
    let mut at = 0;
    while at < 64
        && let Some(chunk) = hay[at..].first_chunk::<8>()
    {
        let found = flag_bytes(u64::from_le_bytes(*chunk), needle);
        if found != 0 {
            return Some(at + first_flagged(found));
        }
        at += 8;
    }
    let rest = &hay[at..];
    if rest.len() < 8 {
        rest.iter().position(|&b| b == needle)
    } else {
        memchr::memchr(needle, rest)
    }
    .map(|i| at + i)
}

/// `application/x-www-form-urlencoded` pairs, exactly as `form_urlencoded::parse` yields
/// them, but borrowing every key and value that needs no decoding (the common case).
#[cfg(test)]
pub(crate) fn parse_pairs(input: &[u8]) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    raw_pairs(input).map(|(k, v, _)| (decode(k), decode(v)))
}

/// URL-decodes (`+` is a space; a malformed `%` escape stays literal), then UTF-8 with
/// replacement characters.
fn decode(input: &[u8]) -> Cow<'_, str> {
    if !input.iter().any(|&b| b == b'+' || b == b'%') {
        return match std::str::from_utf8(input) {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => String::from_utf8_lossy(input),
        };
    }
    let mut out = Vec::with_capacity(input.len());
    decode_into(&mut out, input);
    match String::from_utf8(out) {
        Ok(s) => Cow::Owned(s),
        Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
    }
}

/// Appends the URL-decoded bytes of `input` to `out` (`+` is a space; a malformed `%`
/// escape stays literal). No UTF-8 check: the caller converts.
///
/// The `+` are turned into spaces first (an escaped `+` then stays a `+`), in one branch-free
/// pass the compiler vectorizes. Only keys that need decoding come here; the string-to-sign
/// spaces whole inputs and calls [`unescape_into`] itself.
fn decode_into(out: &mut Vec<u8>, input: &[u8]) {
    let spaced: SmallVec<[u8; 64]> = input.iter().map(plus_to_space).collect();
    unescape_into(out, &spaced);
}

/// `+` as a space, every other byte as it is.
fn plus_to_space(&b: &u8) -> u8 {
    if b == b'+' { b' ' } else { b }
}

/// Appends `input`, whose `+` are already spaces, with its `%` escapes decoded (a malformed
/// one stays literal). Inlined: the string-to-sign calls it once per value.
#[inline(always)]
fn unescape_into(out: &mut Vec<u8>, input: &[u8]) {
    out.reserve(input.len());
    let mut r = 0;
    loop {
        // Eight bytes at a time: each word is appended whole (a fixed-size copy, no call)
        // and cut back to the bytes before its first `%`, if it has one.
        let at = loop {
            let Some(chunk) = input[r..].first_chunk::<8>() else {
                // fewer than eight left
                let rest = &input[r..];
                let Some(i) = rest.iter().position(|&b| b == b'%') else {
                    out.extend_from_slice(rest);
                    return;
                };
                out.extend_from_slice(&rest[..i]);
                break r + i;
            };
            let found = flag_bytes(u64::from_le_bytes(*chunk), b'%');
            out.extend_from_slice(chunk);
            if found != 0 {
                let plain = first_flagged(found);
                out.truncate(out.len() - 8 + plain);
                break r + plain;
            }
            r += 8;
        };
        // `input[at]` is a `%`.
        r = match (hex(input.get(at + 1)), hex(input.get(at + 2))) {
            (Some(hi), Some(lo)) => {
                out.push((hi << 4) | lo);
                at + 3
            }
            _ => {
                out.push(b'%');
                at + 1
            }
        };
    }
}

/// The value of a hexadecimal digit.
fn hex(b: Option<&u8>) -> Option<u8> {
    match *b? {
        d @ b'0'..=b'9' => Some(d - b'0'),
        d @ b'a'..=b'f' => Some(d - b'a' + 10),
        d @ b'A'..=b'F' => Some(d - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn find_byte_finds_the_first() {
        // every length across the word and memchr boundaries, the needle at every position,
        // with bytes just below and above it and a high byte around
        for len in 0..100 {
            for at in 0..=len {
                let mut hay: Vec<u8> = (0..len)
                    .map(|i| [b'%' - 1, b'%' + 1, 0x80 | b'%', 0][i % 4])
                    .collect();
                if at < len {
                    hay[at] = b'%';
                    if at + 3 < len {
                        hay[at + 3] = b'%';
                    }
                }
                let want = hay.iter().position(|&b| b == b'%');
                assert_eq!(find_byte(b'%', &hay), want, "len {len} at {at}");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn parse_pairs_matches_form_urlencoded(
            input in proptest::collection::vec(
                proptest::sample::select(b"ab=&+%25Fz\xe6\x9d\xad\xff".to_vec()),
                0..40,
            )
        ) {
            let ours: Vec<_> = parse_pairs(&input).collect();
            let theirs: Vec<_> = form_urlencoded::parse(&input).collect();
            proptest::prop_assert_eq!(ours, theirs);
        }

        #[test]
        fn parse_pairs_matches_form_urlencoded_any_bytes(
            input in proptest::collection::vec(proptest::num::u8::ANY, 0..64)
        ) {
            let ours: Vec<_> = parse_pairs(&input).collect();
            let theirs: Vec<_> = form_urlencoded::parse(&input).collect();
            proptest::prop_assert_eq!(ours, theirs);
        }
    }

    /// The previous implementation, piece by piece with owned decoding: the reference the
    /// byte-assembled one must match exactly.
    mod reference {
        use super::*;

        fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Cow<'h, str> {
            headers
                .get(name)
                .map_or(Cow::Borrowed(""), |v| String::from_utf8_lossy(v.as_bytes()))
        }

        pub(super) fn string_to_sign(
            method: &Method,
            uri: &Uri,
            headers: &HeaderMap,
            form_body: Option<&[u8]>,
        ) -> String {
            let names: Vec<Cow<'_, str>> =
                signed_header_names(headers.get("x-ca-signature-headers"))
                    .into_iter()
                    .map(|(n, _)| n)
                    .collect();
            let fixed = [
                header_text(headers, "accept"),
                header_text(headers, "content-md5"),
                header_text(headers, "content-type"),
                header_text(headers, "date"),
            ];
            let signed: Vec<Cow<'_, str>> = names.iter().map(|n| header_text(headers, n)).collect();
            let mut params: Vec<(Cow<'_, str>, Cow<'_, str>, u8)> = Vec::new();
            if let Some(body) = form_body {
                params.extend(form_urlencoded::parse(body).map(|(k, v)| (k, v, 0)));
            }
            if let Some(query) = uri.query() {
                params.extend(form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k, v, 1)));
            }
            params.sort_by(|a, b| a.0.cmp(&b.0).then(a.2.cmp(&b.2)));
            params.dedup_by(|later, first| later.0 == first.0);
            let mut out = method.as_str().to_ascii_uppercase();
            out.push('\n');
            for line in &fixed {
                out.push_str(line);
                out.push('\n');
            }
            for (name, value) in names.iter().zip(&signed) {
                out.push_str(name);
                out.push(':');
                out.push_str(value);
                out.push('\n');
            }
            out.push_str(uri.path());
            for (i, (k, v, _)) in params.iter().enumerate() {
                out.push(if i == 0 { '?' } else { '&' });
                out.push_str(k);
                if !v.is_empty() {
                    out.push('=');
                    out.push_str(v);
                }
            }
            out
        }
    }

    /// Bytes for header values: ASCII, separators, and bytes that form valid, truncated
    /// and stray UTF-8 sequences.
    const VALUE_BYTES: &[u8] = b"aZ0 ,:=&+%\xe6\x9d\xad\xc3\xa9\x80\xff\xf0\x9f";
    /// Bytes for a query: what a URI accepts, with escapes that decode to invalid UTF-8.
    const QUERY_BYTES: &[u8] = b"ab=&+%25FEf9z";

    proptest::proptest! {
        #[test]
        fn matches_reference_implementation(
            method in proptest::sample::select(vec!["GET", "post", "PaTcH"]),
            values in proptest::collection::vec(
                proptest::collection::vec(proptest::sample::select(VALUE_BYTES.to_vec()), 0..8),
                6,
            ),
            list in proptest::sample::select(vec![
                "", "x-a,x-b", "X-B , x-a,accept,x-a", "x-c,content-type,x-missing",
                "Date,x-a,x-b,x-c", "bad name,x-a",
            ]),
            query in proptest::collection::vec(proptest::sample::select(QUERY_BYTES.to_vec()), 0..24),
            form in proptest::option::of(
                proptest::collection::vec(proptest::num::u8::ANY, 0..48)
            ),
        ) {
            let mut h = HeaderMap::new();
            let names = ["x-a", "x-b", "x-c", "accept", "date", "content-type"];
            for (name, value) in names.iter().zip(&values) {
                if let Ok(v) = HeaderValue::from_bytes(value) {
                    h.append(*name, v);
                }
            }
            h.append("x-ca-signature-headers", HeaderValue::from_static(list));
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            let uri: Uri = format!("/p/q?{}", String::from_utf8(query).unwrap()).parse().unwrap();
            let ours = string_to_sign(&method, &uri, &h, form.as_deref());
            let theirs = reference::string_to_sign(&method, &uri, &h, form.as_deref());
            proptest::prop_assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn empty_lines_are_kept() {
        let uri: Uri = "/p".parse().unwrap();
        let sts = string_to_sign(&Method::GET, &uri, &HeaderMap::new(), None);
        assert_eq!(sts, "GET\n\n\n\n\n/p");
    }

    #[test]
    fn signed_names_keep_spelling_and_sort_bytewise() {
        let h = headers(&[
            ("x-ca-key", "k"),
            ("x-ca-nonce", "n"),
            (
                "x-ca-signature-headers",
                " x-ca-nonce , X-Ca-Key,Accept,x-ca-signature,,x-ca-nonce,X-Missing",
            ),
        ]);
        let uri: Uri = "/p".parse().unwrap();
        let sts = string_to_sign(&Method::GET, &uri, &h, None);
        assert_eq!(sts, "GET\n\n\n\n\nX-Ca-Key:k\nX-Missing:\nx-ca-nonce:n\n/p");
    }

    #[test]
    fn unescape_into_matches_percent_decoding() {
        // every length across the word boundaries, escapes (whole, cut short, malformed) at
        // every position, after a prefix already in the output
        for len in 0..40 {
            for at in 0..=len {
                for escape in [&b"%26"[..], b"%2", b"%", b"%zz", b"%%41", b"%e6%9d"] {
                    let mut input: Vec<u8> = (0..len).map(|i| b"ab %9"[i % 5]).collect();
                    input.splice(at..at, escape.iter().copied());
                    let mut want = b"pre".to_vec();
                    want.extend(percent_encoding::percent_decode(&input));
                    let mut ours = b"pre".to_vec();
                    unescape_into(&mut ours, &input);
                    assert_eq!(ours, want, "{input:?}");
                }
            }
        }
    }

    #[test]
    fn query_decoding_plus_duplicates_and_form_override() {
        let uri: Uri = "/p?b=q&a=1&a=2&s=x+y%20z&z=&bare".parse().unwrap();
        let sts = string_to_sign(
            &Method::POST,
            &uri,
            &HeaderMap::new(),
            Some(b"b=form&c=%E6%9D%AD"),
        );
        assert_eq!(sts, "POST\n\n\n\n\n/p?a=1&b=form&bare&c=杭&s=x y z&z");
    }

    #[test]
    fn zero_and_false_are_values() {
        let uri: Uri = "/p?a=0&b=false".parse().unwrap();
        let sts = string_to_sign(&Method::GET, &uri, &HeaderMap::new(), None);
        assert!(sts.ends_with("/p?a=0&b=false"));
    }

    #[test]
    fn non_utf8_header_bytes_do_not_panic() {
        let mut h = HeaderMap::new();
        h.insert("x-bin", HeaderValue::from_bytes(b"\xff\xfe").unwrap());
        h.insert(
            "x-ca-signature-headers",
            HeaderValue::from_bytes(b"x-bin,\xff").unwrap(),
        );
        let uri: Uri = "/p".parse().unwrap();
        let sts = string_to_sign(&Method::GET, &uri, &h, None);
        assert!(sts.contains("x-bin:\u{fffd}\u{fffd}\n"));
    }

    #[test]
    fn is_form_is_case_insensitive() {
        assert!(is_form(&headers(&[(
            "content-type",
            "Application/X-WWW-Form-Urlencoded"
        )])));
        assert!(!is_form(&headers(&[("content-type", "application/json")])));
        assert!(!is_form(&headers(&[("content-type", "app")])));
    }

    #[test]
    fn signed_names_are_trimmed_sorted_deduplicated_and_spelled_as_listed() {
        let names = |list: &[u8]| -> Vec<String> {
            let v = HeaderValue::from_bytes(list).unwrap();
            signed_header_names(Some(&v))
                .iter()
                .map(|(n, _)| n.to_string())
                .collect()
        };
        assert_eq!(
            names(b" X-Ca-Key ,\tx-ca-nonce,,x-ca-key, X-Ca-Key,Content-Type,x-ca-signature"),
            ["X-Ca-Key", "x-ca-key", "x-ca-nonce"]
        );
        // Not ASCII: Unicode whitespace (a no-break space) is trimmed as `str::trim` does.
        assert_eq!(
            names("\u{a0}x-a\u{a0}, x-\u{e9} ".as_bytes()),
            ["x-a", "x-\u{e9}"]
        );
        assert!(names(b" , ,").is_empty());
    }
}
