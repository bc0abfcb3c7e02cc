//! The client-signature string-to-sign (behaviour spec §5.4).

use std::borrow::Cow;

use http::{HeaderMap, Method, Uri};

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
/// assert!(!stagegate::is_form(&headers));
/// headers.insert(
///     CONTENT_TYPE,
///     HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
/// );
/// assert!(stagegate::is_form(&headers));
/// ```
#[must_use]
pub fn is_form(headers: &HeaderMap) -> bool {
    const FORM: &[u8] = b"application/x-www-form-urlencoded";
    headers
        .get(http::header::CONTENT_TYPE)
        .map(http::HeaderValue::as_bytes)
        .is_some_and(|ct| ct.len() >= FORM.len() && ct[..FORM.len()].eq_ignore_ascii_case(FORM))
}

/// The value of a header as text: the first value if repeated, empty if absent, and
/// non-UTF-8 bytes replaced (such a request then cannot match any signature).
fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Cow<'h, str> {
    headers
        .get(name)
        .map_or(Cow::Borrowed(""), |v| String::from_utf8_lossy(v.as_bytes()))
}

/// The header names listed in `X-Ca-Signature-Headers`, spelled as the client listed
/// them, minus the excluded names, sorted bytewise and deduplicated.
pub(crate) fn signed_header_names(headers: &HeaderMap) -> Vec<Cow<'_, str>> {
    let Some(list) = headers.get(SIGNATURE_HEADERS) else {
        return Vec::new();
    };
    let list = String::from_utf8_lossy(list.as_bytes());
    let mut names: Vec<Cow<'_, str>> = match list {
        Cow::Borrowed(list) => list
            .split(',')
            .map(str::trim)
            .filter(|n| is_signable(n))
            .map(Cow::Borrowed)
            .collect(),
        Cow::Owned(list) => list
            .split(',')
            .map(str::trim)
            .filter(|n| is_signable(n))
            .map(|n| Cow::Owned(n.to_owned()))
            .collect(),
    };
    names.sort_unstable();
    names.dedup();
    names
}

fn is_signable(name: &str) -> bool {
    !name.is_empty()
        && !EXCLUDED_SIGNED_HEADERS
            .iter()
            .any(|excluded| excluded.eq_ignore_ascii_case(name))
}

/// Builds the exact string-to-sign of spec §5.4 for a request.
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
/// let sts = stagegate::string_to_sign(&Method::GET, &uri, &headers, None);
/// assert_eq!(sts, "GET\napplication/json\n\n\n\nx-ca-key:203753385\n/demo/get?a=1&b=2&empty");
/// ```
#[must_use]
pub fn string_to_sign(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    form_body: Option<&[u8]>,
) -> String {
    let names = signed_header_names(headers);
    string_to_sign_with_names(method, uri, headers, form_body, &names)
}

/// [`string_to_sign`] with the signed-header names already extracted.
pub(crate) fn string_to_sign_with_names(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    form_body: Option<&[u8]>,
    names: &[Cow<'_, str>],
) -> String {
    let fixed = [
        header_text(headers, "accept"),
        header_text(headers, "content-md5"),
        header_text(headers, "content-type"),
        header_text(headers, "date"),
    ];
    let signed: Vec<Cow<'_, str>> = names.iter().map(|n| header_text(headers, n)).collect();

    let mut params: Vec<(Cow<'_, str>, Cow<'_, str>, u8)> = Vec::new();
    if let Some(body) = form_body {
        // Rank 0: a form value wins over a query value of the same key.
        params.extend(parse_pairs(body).map(|(k, v)| (k, v, 0)));
    }
    if let Some(query) = uri.query() {
        params.extend(parse_pairs(query.as_bytes()).map(|(k, v)| (k, v, 1)));
    }
    // Stable: equal (key, rank) keep arrival order, so dedup keeps the first value.
    params.sort_by(|a, b| a.0.cmp(&b.0).then(a.2.cmp(&b.2)));
    params.dedup_by(|later, first| later.0 == first.0);

    let path = uri.path();
    let capacity = method.as_str().len()
        + fixed.iter().map(|f| f.len() + 1).sum::<usize>()
        + names
            .iter()
            .zip(&signed)
            .map(|(n, v)| n.len() + v.len() + 2)
            .sum::<usize>()
        + path.len()
        + params
            .iter()
            .map(|(k, v, _)| k.len() + v.len() + 2)
            .sum::<usize>()
        + 1;
    let mut out = String::with_capacity(capacity);

    let m = method.as_str();
    if m.bytes().any(|b| b.is_ascii_lowercase()) {
        out.push_str(&m.to_ascii_uppercase());
    } else {
        out.push_str(m);
    }
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
    out.push_str(path);
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

/// `application/x-www-form-urlencoded` pairs, exactly as `form_urlencoded::parse` yields
/// them, but borrowing every key and value that needs no decoding (the common case).
pub(crate) fn parse_pairs(input: &[u8]) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    input
        .split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &[][..]),
            };
            (decode(k), decode(v))
        })
}

/// URL-decodes (`+` is a space; a malformed `%` escape stays literal), then UTF-8 with
/// replacement characters.
fn decode(input: &[u8]) -> Cow<'_, str> {
    if !input.iter().any(|&b| b == b'+' || b == b'%') {
        return String::from_utf8_lossy(input);
    }
    let mut out = Vec::with_capacity(input.len());
    let mut rest = input;
    while let Some(special) = rest.iter().position(|&b| b == b'+' || b == b'%') {
        out.extend_from_slice(&rest[..special]);
        rest = &rest[special..];
        if rest[0] == b'+' {
            out.push(b' ');
            rest = &rest[1..];
            continue;
        }
        let hex = |j: usize| rest.get(j).and_then(|&h| char::from(h).to_digit(16));
        match (hex(1), hex(2)) {
            (Some(hi), Some(lo)) => {
                // Both digits are < 16, so the byte fits.
                out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'%'));
                rest = &rest[3..];
            }
            _ => {
                out.push(b'%');
                rest = &rest[1..];
            }
        }
    }
    out.extend_from_slice(rest);
    match String::from_utf8(out) {
        Ok(s) => Cow::Owned(s),
        Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
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
}
