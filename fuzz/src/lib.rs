//! What the fuzz targets share: a readable input format and reference implementations.
//!
//! Most targets read their input as a small HTTP/1-like request, so that seed corpus files are
//! plain text anyone can write:
//!
//! ```text
//! POST /demo/post?b=2&a=1
//! Content-Type: application/x-www-form-urlencoded
//! X-Ca-Signature-Headers: x-ca-key
//!
//! name=ann&age=3
//! ```
//!
//! The first line is `METHOD TARGET` (without a space, all of it is the target and the method
//! is `GET`); header lines follow until an empty line (a line without `:` is skipped, and so is
//! a header the `http` crate refuses); the rest is the body, bytes as they are. Lines end in
//! `\n` (a `\r` before it is dropped).

use std::borrow::Cow;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};

/// A request decoded from fuzz input by [`parse_request`].
#[derive(Debug, Clone)]
pub struct FuzzRequest {
    /// The method (`GET` when the line names none or an invalid one).
    pub method: Method,
    /// The request target, as the `http` crate parsed it.
    pub uri: Uri,
    /// The headers, in input order (repeats kept).
    pub headers: HeaderMap,
    /// Everything after the empty line.
    pub body: Vec<u8>,
}

/// Splits off one line (without its `\n` and a `\r` before it).
fn take_line(input: &[u8]) -> (&[u8], Option<&[u8]>) {
    match input.iter().position(|&b| b == b'\n') {
        Some(i) => {
            let line = &input[..i];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            (line, Some(&input[i + 1..]))
        }
        None => (input, None),
    }
}

/// Decodes fuzz input as a request (see the crate docs); `None` when the request target is
/// not a URI the `http` crate accepts (a server would have refused it before the gateway).
pub fn parse_request(input: &[u8]) -> Option<FuzzRequest> {
    let (line, mut rest) = take_line(input);
    let (method, target) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (
            Method::from_bytes(&line[..i]).unwrap_or(Method::GET),
            &line[i + 1..],
        ),
        None => (Method::GET, line),
    };
    let uri = Uri::try_from(target).ok()?;
    let mut headers = HeaderMap::new();
    let mut body = Vec::new();
    while let Some(r) = rest {
        let (line, next) = take_line(r);
        rest = next;
        if line.is_empty() {
            body = next.unwrap_or_default().to_vec();
            break;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let value = line[colon + 1..].trim_ascii_start();
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(value),
        ) {
            headers.append(name, value);
        }
    }
    Some(FuzzRequest {
        method,
        uri,
        headers,
        body,
    })
}

/// Splits fuzz input into fields at `\n`; missing fields are empty.
pub fn fields<const N: usize>(input: &[u8]) -> [&[u8]; N] {
    let mut out = [&[][..]; N];
    let mut rest = Some(input);
    for slot in out.iter_mut().take(N - 1) {
        let Some(r) = rest else { break };
        let (line, next) = take_line(r);
        *slot = line;
        rest = next;
    }
    if let Some(r) = rest {
        out[N - 1] = r;
    }
    out
}

/// The parameter part of a string-to-sign, written as spec §5.4 says and without any of the
/// crate's code: the pairs of `form` (first) and `query` as `form_urlencoded` decodes them,
/// sorted by key bytes (stable: form before query, then input order), the first of each key
/// kept, written `k=v` (or `k` for an empty value) joined by `&` after a `?` (nothing without
/// pairs).
pub fn reference_params(query: Option<&[u8]>, form: Option<&[u8]>) -> String {
    let mut pairs: Vec<(Cow<'_, str>, Cow<'_, str>)> = Vec::new();
    for source in [form, query].into_iter().flatten() {
        pairs.extend(form_urlencoded::parse(source));
    }
    // stable: equal keys keep form-before-query and arrival order
    pairs.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    pairs.dedup_by(|later, first| later.0 == first.0);
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(k);
        if !v.is_empty() {
            out.push('=');
            out.push_str(v);
        }
    }
    out
}

/// Header names that never enter the signed-headers block (spec §5.4).
const EXCLUDED: [&str; 6] = [
    "x-ca-signature",
    "x-ca-signature-headers",
    "accept",
    "content-md5",
    "content-type",
    "date",
];

/// The whole string-to-sign of spec §5.4, from a straightforward reading of the spec (no code
/// shared with the crate): method, the four fixed lines, the signed-header lines, the path and
/// [`reference_params`].
pub fn reference_string_to_sign(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    form: Option<&[u8]>,
) -> String {
    let text = |v: &HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned();
    let mut out = method.as_str().to_ascii_uppercase();
    out.push('\n');
    for name in ["accept", "content-md5", "content-type", "date"] {
        if let Some(v) = headers.get(name) {
            out.push_str(&text(v));
        }
        out.push('\n');
    }
    let list = headers
        .get("x-ca-signature-headers")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let mut names: Vec<&str> = if list.is_empty() {
        Vec::new()
    } else {
        list.split(',')
            .map(|n| {
                if list.is_ascii() {
                    n.trim_ascii()
                } else {
                    n.trim()
                }
            })
            .filter(|n| !n.is_empty() && !EXCLUDED.iter().any(|e| e.eq_ignore_ascii_case(n)))
            .collect()
    };
    names.sort_unstable();
    names.dedup();
    for name in names {
        out.push_str(name);
        out.push(':');
        if let Some((_, v)) = headers
            .iter()
            .find(|(h, _)| h.as_str().eq_ignore_ascii_case(name))
        {
            out.push_str(&text(v));
        }
        out.push('\n');
    }
    out.push_str(uri.path());
    out.push_str(&reference_params(uri.query().map(str::as_bytes), form));
    out
}

/// Runs a future to completion on a fresh single-threaded runtime kept per thread.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    thread_local! {
        static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a current-thread runtime");
    }
    RT.with(|rt| rt.block_on(f))
}

/// The raw `(name, value)` pairs of urlencoded data: split at `&` (empty pieces skipped), then
/// at the first `=`, as `form_urlencoded` splits.
pub fn raw_pairs(data: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    data.split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.iter().position(|&b| b == b'=') {
            Some(i) => (&p[..i], &p[i + 1..]),
            None => (p, &p[p.len()..]),
        })
}

/// One urlencoded component decoded strictly: `+` is a space, `%XX` a byte (a malformed
/// escape stays literal), and the result must be UTF-8.
pub fn decode_strict(raw: &[u8]) -> Option<String> {
    let hex = |b: Option<&u8>| b.and_then(|&b| char::from(b).to_digit(16));
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match (raw[i], hex(raw.get(i + 1)), hex(raw.get(i + 2))) {
            (b'+', ..) => out.push(b' '),
            (b'%', Some(hi), Some(lo)) => {
                // two hex digits: at most 0xff
                out.push(u8::try_from(hi * 16 + lo).unwrap_or(0));
                i += 2;
            }
            (b, ..) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// `%XX` escapes decoded to bytes (a malformed escape stays literal; `+` stays `+`), as a
/// backend decodes a path segment.
pub fn percent_decode(raw: &[u8]) -> Vec<u8> {
    let hex = |b: Option<&u8>| b.and_then(|&b| char::from(b).to_digit(16));
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match (raw[i], hex(raw.get(i + 1)), hex(raw.get(i + 2))) {
            (b'%', Some(hi), Some(lo)) => {
                out.push(u8::try_from(hi * 16 + lo).unwrap_or(0));
                i += 2;
            }
            (b, ..) => out.push(b),
        }
        i += 1;
    }
    out
}
