//! The web console: static files under `console/` at the repository root, embedded in the
//! binary and served at `/console/` by the admin API.
//!
//! The files hold no data, so they are served without the admin token; every call the console
//! makes for data carries the token as `Authorization: Bearer`. Only the files in [`ASSETS`]
//! are served, by exact name: any other path under `/console/` (a dot segment, `%2e%2e`, a
//! backslash, a sub-folder) is a 404, and never reaches another route. Each answer carries:
//!
//! - its content type, and an `ETag` (a hash of the file) with `Cache-Control: no-cache`, so a
//!   browser revalidates and gets `304 Not Modified` while the binary is unchanged;
//! - [`CONTENT_SECURITY_POLICY`]: scripts, styles and images only from the console itself, no
//!   inline script, `connect-src 'self'` (data calls only to the admin API that served it), no
//!   framing, no forms posted anywhere;
//! - `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`,
//!   `X-Frame-Options: DENY`.

use std::sync::LazyLock;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use sha2::{Digest, Sha256};

use super::AdminError;
use super::routes::P;

/// The console's Content-Security-Policy: everything from the console's own origin, nothing
/// inline, data calls only to the admin API that served it.
///
/// # Examples
///
/// ```
/// use stagegate::admin::CONTENT_SECURITY_POLICY;
/// assert!(CONTENT_SECURITY_POLICY.contains("script-src 'self'"));
/// assert!(CONTENT_SECURITY_POLICY.contains("connect-src 'self'"));
/// assert!(!CONTENT_SECURITY_POLICY.contains("unsafe-inline"));
/// ```
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'none'; \
     frame-ancestors 'none'; base-uri 'none'";

/// The console's files: (name under `/console/`, content type, bytes).
///
/// # Examples
///
/// ```
/// use stagegate::admin::ASSETS;
/// assert!(ASSETS.iter().any(|(name, ty, _)| *name == "app.js" && ty.starts_with("text/javascript")));
/// ```
pub const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../../console/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../console/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../../console/style.css"),
    ),
    (
        "icon.svg",
        "image/svg+xml",
        include_bytes!("../../console/icon.svg"),
    ),
];

/// Each asset's `ETag`, computed once.
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|(_, _, bytes)| {
            let digest = Sha256::digest(bytes);
            let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
            HeaderValue::from_str(&format!("\"{hex}\"")).unwrap_or(HeaderValue::from_static("\"\""))
        })
        .collect()
});

/// Whether a request may reach the console without the admin token: a `GET` or `HEAD` of
/// `/console`, `/console/` or one of the [`ASSETS`] by its exact name.
pub(crate) fn is_public(method: &Method, path: &str) -> bool {
    if method != Method::GET && method != Method::HEAD {
        return false;
    }
    match path.strip_prefix("/console") {
        Some("" | "/") => true,
        Some(rest) => rest
            .strip_prefix('/')
            .is_some_and(|name| ASSETS.iter().any(|(n, _, _)| *n == name)),
        None => false,
    }
}

/// `GET /console`: the console lives at `/console/` (relative, so it works when nested).
pub(crate) async fn redirect() -> Response {
    (
        StatusCode::PERMANENT_REDIRECT,
        [(header::LOCATION, HeaderValue::from_static("console/"))],
    )
        .into_response()
}

/// `GET /console/`: the console's page.
pub(crate) async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

/// `GET /console/{name}`: one of the [`ASSETS`], or 404.
pub(crate) async fn asset(P(name): P<String>, headers: HeaderMap) -> Response {
    serve(&name, &headers)
}

fn serve(name: &str, req: &HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|(n, _, _)| *n == name) else {
        return AdminError::NotFound {
            what: "console file",
            id: crate::model::id::truncate(name),
        }
        .into_response();
    };
    let (_, content_type, bytes) = ASSETS[i];
    let etag = &ETAGS[i];
    let fresh = req
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut res = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut res = Response::new(Body::from(bytes));
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        res
    };
    let h = res.headers_mut();
    h.insert(header::ETAG, etag.clone());
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_named_assets_are_public() {
        let get = Method::GET;
        assert!(is_public(&get, "/console"));
        assert!(is_public(&get, "/console/"));
        assert!(is_public(&get, "/console/app.js"));
        assert!(is_public(&Method::HEAD, "/console/style.css"));
        for p in [
            "/console/../backends",
            "/console/%2e%2e/backends",
            "/console/x/../../backends",
            "/console/nope.js",
            "/consoleX",
            "/console//app.js",
            "/console/app.js/",
            "/backends",
        ] {
            assert!(!is_public(&get, p), "{p}");
        }
        assert!(!is_public(&Method::POST, "/console/app.js"));
    }

    #[test]
    fn etags_differ_per_file_and_are_quoted() {
        let tags: std::collections::HashSet<_> = ETAGS.iter().collect();
        assert_eq!(tags.len(), ASSETS.len());
        assert!(ETAGS.iter().all(|t| t.as_bytes().starts_with(b"\"")));
    }
}
