//! What of an authenticated request may reach the backend: only what was signed, and no
//! AppCode.

use std::borrow::Cow;
use std::collections::HashSet;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{HeaderValue, Uri};
use smallvec::SmallVec;

use super::string_to_sign::is_form;

/// The `Authorization` scheme of an AppCode.
const APPCODE_PREFIX: &[u8] = b"APPCODE ";

/// Above this many query pairs, keys already seen are looked up in a hash set rather than
/// a list.
const LINEAR_KEYS: usize = 16;

/// What [`prepare_for_backend`] removes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct BackendView {
    /// The request was authenticated by a signature: of a repeated query key, and of a
    /// repeated field of a buffered urlencoded form, only the first (signed) value is kept.
    pub(crate) signed_query_only: bool,
    /// Remove `Authorization: APPCODE …`.
    pub(crate) strip_appcode_header: bool,
    /// Remove the `AppCode` query parameter.
    pub(crate) strip_appcode_query: bool,
}

/// Rewrites `parts` (and the buffered `body`) as `view` says. Nothing is copied unless
/// something is removed.
pub(crate) fn prepare_for_backend(parts: &mut Parts, body: Option<&mut Bytes>, view: BackendView) {
    if view.strip_appcode_header {
        strip_appcode_header(&mut parts.headers);
    }
    if view.signed_query_only
        && let Some(body) = body
        && is_form(&parts.headers)
        && let Ok(text) = std::str::from_utf8(body)
        && let Some(kept) = filter_query(text, true, false)
    {
        // As a mapped body is replaced: new framing, and no digest of the old bytes.
        parts.headers.remove(TRANSFER_ENCODING);
        parts.headers.remove("content-md5");
        parts
            .headers
            .insert(CONTENT_LENGTH, HeaderValue::from(kept.len()));
        *body = Bytes::from(kept);
    }
    if (view.signed_query_only || view.strip_appcode_query)
        && let Some(query) = parts.uri.query()
        && let Some(kept) = filter_query(query, view.signed_query_only, view.strip_appcode_query)
    {
        let path = parts.uri.path();
        let pq = if kept.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{kept}")
        };
        if let Ok(pq) = PathAndQuery::try_from(pq) {
            let mut uri = std::mem::take(&mut parts.uri).into_parts();
            uri.path_and_query = Some(pq);
            if let Ok(uri) = Uri::from_parts(uri) {
                parts.uri = uri;
            }
        }
    }
}

/// Removes every `Authorization` value of the `APPCODE` scheme, keeping the others.
fn strip_appcode_header(headers: &mut http::HeaderMap) {
    let is_code = |v: &HeaderValue| v.as_bytes().starts_with(APPCODE_PREFIX);
    if !headers.get_all(AUTHORIZATION).iter().any(is_code) {
        return;
    }
    let others: Vec<HeaderValue> = headers
        .get_all(AUTHORIZATION)
        .iter()
        .filter(|v| !is_code(v))
        .cloned()
        .collect();
    headers.remove(AUTHORIZATION);
    for v in others {
        headers.append(AUTHORIZATION, v);
    }
}

/// The query without the later values of repeated keys (`dedup`) and without `AppCode`
/// (`strip_code`), keys compared decoded (as the string-to-sign reads them); `None` when
/// nothing is removed. Kept pairs are left as the client encoded them. A query of a few
/// plain keys with nothing to remove allocates nothing.
fn filter_query(query: &str, dedup: bool, strip_code: bool) -> Option<String> {
    let mut seen: SmallVec<[Cow<'_, str>; LINEAR_KEYS]> = SmallVec::new();
    let mut set: HashSet<Cow<'_, str>> = HashSet::new();
    let mut kept: SmallVec<[&str; LINEAR_KEYS]> = SmallVec::new();
    let mut removed = false;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let raw_key = pair.split_once('=').map_or(pair, |(k, _)| k);
        let key = decode_key(raw_key);
        let drop = if strip_code && key == "AppCode" {
            true
        } else if !dedup {
            false
        } else if seen.len() < LINEAR_KEYS {
            let repeated = seen.contains(&key);
            if !repeated {
                seen.push(key);
            }
            repeated
        } else {
            // Many keys: a hash set from here on (keys hashed with a random key).
            if set.is_empty() {
                set.extend(seen.iter().cloned());
            }
            !set.insert(key)
        };
        if drop {
            removed = true;
        } else {
            kept.push(pair);
        }
    }
    removed.then(|| kept.join("&"))
}

/// A query key decoded as `application/x-www-form-urlencoded` (`+` is a space).
fn decode_key(raw: &str) -> Cow<'_, str> {
    if !raw.bytes().any(|b| b == b'%' || b == b'+') {
        return Cow::Borrowed(raw);
    }
    form_urlencoded::parse(format!("{raw}=").as_bytes())
        .next()
        .map_or(Cow::Borrowed(raw), |(k, _)| Cow::Owned(k.into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, auth: &[&str]) -> Parts {
        let mut b = http::Request::get(uri);
        for a in auth {
            b = b.header(AUTHORIZATION, *a);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn a_repeated_key_keeps_its_first_value_only() {
        let mut p = parts("http://h/p?a=1&b=x&a=2&%61=3&c&c=&b+=y", &[]);
        prepare_for_backend(
            &mut p,
            None,
            BackendView {
                signed_query_only: true,
                ..Default::default()
            },
        );
        assert_eq!(p.uri.to_string(), "http://h/p?a=1&b=x&c&b+=y");
    }

    #[test]
    fn a_signed_form_keeps_the_first_value_of_each_field() {
        let mut p = http::Request::post("/p")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("content-length", "29")
            .header("content-md5", "x")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        let view = BackendView {
            signed_query_only: true,
            ..Default::default()
        };
        let mut body = Bytes::from_static(b"amount=1&amount=1000&to=alice");
        prepare_for_backend(&mut p, Some(&mut body), view);
        assert_eq!(&body[..], b"amount=1&to=alice");
        assert_eq!(p.headers["content-length"], "17");
        assert!(!p.headers.contains_key("content-md5"));
        // not a form: left alone
        let mut json = Bytes::from_static(b"a=1&a=2");
        p.headers
            .insert("content-type", HeaderValue::from_static("text/plain"));
        prepare_for_backend(&mut p, Some(&mut json), view);
        assert_eq!(&json[..], b"a=1&a=2");
    }

    #[test]
    fn many_keys_use_the_set_and_agree_with_the_list() {
        let q: Vec<String> = (0..40).map(|i| format!("k{}={i}", i % 25)).collect();
        let mut p = parts(&format!("/p?{}", q.join("&")), &[]);
        prepare_for_backend(
            &mut p,
            None,
            BackendView {
                signed_query_only: true,
                ..Default::default()
            },
        );
        let want: Vec<String> = (0..25).map(|i| format!("k{i}={i}")).collect();
        assert_eq!(p.uri.query(), Some(want.join("&").as_str()));
    }

    #[test]
    fn nothing_removed_leaves_the_uri_alone() {
        let mut p = parts("/p?a=1&b=2", &["Basic abc"]);
        let before = p.clone();
        prepare_for_backend(
            &mut p,
            None,
            BackendView {
                signed_query_only: true,
                strip_appcode_header: true,
                strip_appcode_query: true,
            },
        );
        assert_eq!(p.uri, before.uri);
        assert_eq!(p.headers, before.headers);
    }

    #[test]
    fn appcodes_are_stripped_other_credentials_kept() {
        let strip_both = |p: &mut Parts| {
            prepare_for_backend(
                p,
                None,
                BackendView {
                    strip_appcode_header: true,
                    strip_appcode_query: true,
                    ..Default::default()
                },
            );
        };
        let mut p = parts(
            "/p?AppCode=abc&x=1&AppCode=def",
            &["APPCODE abc", "Bearer t"],
        );
        strip_both(&mut p);
        assert_eq!(p.uri, "/p?x=1");
        let auth: Vec<_> = p.headers.get_all(AUTHORIZATION).iter().collect();
        assert_eq!(auth, ["Bearer t"]);
        let mut p = parts("/p?AppCode=abc", &["APPCODE abc"]);
        strip_both(&mut p);
        assert_eq!(p.uri, "/p");
        assert!(!p.headers.contains_key(AUTHORIZATION));
    }
}
