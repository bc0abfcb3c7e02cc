//! Path confinement: the checks a request path passes before it is routed, so that a caller
//! cannot step out of an API's path on the backend.
//!
//! Rules (issue 20, item 1):
//!
//! * A **dot segment** (`.` or `..`) is refused, raw or percent-encoded in any case (`%2e%2E`,
//!   `.%2e`, ...), also when it only becomes a segment at an encoded slash or backslash
//!   (`..%2fadmin`) and when a `;` parameter follows it (`..;x`, which some servlet containers
//!   read as `..`).
//! * A raw **backslash** is refused: several servers read it as a separator.
//! * An **encoded slash or backslash** (`%2F`, `%5C`, any case) is reported as
//!   [`PathCheck::EncodedSeparator`]: the gateway accepts it only inside a `[param]` whose API
//!   declares that parameter with
//!   [`allow_encoded_slash`](crate::model::RequestParameter::allow_encoded_slash), and forwards
//!   it still encoded. Never in a match-all (`/*`) sub-path.
//!
//! Only the bytes `.`, `%` and `\` can start anything refused, so a path without them (most) is
//! accepted after one scan.

/// What [`check_request_path`] found in a path it accepts.
///
/// # Examples
///
/// ```
/// use stagegate::routing::{PathCheck, check_request_path};
/// assert_eq!(check_request_path("/files/a.txt"), Ok(PathCheck::Clean));
/// assert_eq!(check_request_path("/files/a%2Fb.txt"), Ok(PathCheck::EncodedSeparator));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathCheck {
    /// Nothing to watch: the path may be routed and forwarded as it is.
    Clean,
    /// The path holds an encoded slash or backslash (`%2F`, `%5C`) inside a segment: acceptable
    /// only inside a `[param]` that allows it (see [`encoded_separators_allowed`]).
    EncodedSeparator,
}

/// Why [`check_request_path`] refused a path (the `${Reason}` of `I400PA`).
///
/// # Examples
///
/// ```
/// use stagegate::routing::{PathError, check_request_path};
/// let e = check_request_path("/a/%2E%2e/b").unwrap_err();
/// assert_eq!(e, PathError::DotSegment);
/// assert_eq!(e.to_string(), "dot segment");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// A `.` or `..` segment, raw or percent-encoded.
    #[error("dot segment")]
    DotSegment,
    /// A raw `\`.
    #[error("backslash")]
    Backslash,
    /// An encoded slash or backslash where no parameter allows one.
    #[error("encoded slash")]
    EncodedSeparator,
}

/// Checks a request path (as received, percent-encoded) before routing.
///
/// # Errors
///
/// [`PathError::DotSegment`] or [`PathError::Backslash`]; the gateway answers both with
/// `I400PA`.
///
/// # Examples
///
/// ```
/// use stagegate::routing::{PathCheck, PathError, check_request_path};
/// assert_eq!(check_request_path("/p/public.txt"), Ok(PathCheck::Clean));
/// assert_eq!(check_request_path("/p/../admin"), Err(PathError::DotSegment));
/// assert_eq!(check_request_path("/p/%2e%2E/admin"), Err(PathError::DotSegment));
/// assert_eq!(check_request_path("/p/..%2fadmin"), Err(PathError::DotSegment));
/// assert_eq!(check_request_path("/p/a%2Fb"), Ok(PathCheck::EncodedSeparator));
/// assert_eq!(check_request_path("/p/a\\b"), Err(PathError::Backslash));
/// assert_eq!(check_request_path("/p/v1.2/..x"), Ok(PathCheck::Clean));
/// ```
pub fn check_request_path(path: &str) -> Result<PathCheck, PathError> {
    let bytes = path.as_bytes();
    if !bytes.iter().any(|&b| matches!(b, b'.' | b'%' | b'\\')) {
        return Ok(PathCheck::Clean);
    }
    if bytes.contains(&b'\\') {
        return Err(PathError::Backslash);
    }
    let mut found = PathCheck::Clean;
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let sep_len = match bytes[i] {
            b'/' => 1,
            b'%' if encoded_separator(&bytes[i..]) => {
                found = PathCheck::EncodedSeparator;
                3
            }
            _ => 0,
        };
        if sep_len == 0 {
            i += 1;
            continue;
        }
        if is_dot_segment(&bytes[start..i]) {
            return Err(PathError::DotSegment);
        }
        i += sep_len;
        start = i;
    }
    if is_dot_segment(&bytes[start..]) {
        return Err(PathError::DotSegment);
    }
    Ok(found)
}

/// Whether `raw` starts with `%2F` or `%5C` (any case).
fn encoded_separator(raw: &[u8]) -> bool {
    matches!(
        raw,
        [b'%', b'2', b'f' | b'F', ..] | [b'%', b'5', b'c' | b'C', ..]
    )
}

/// Whether a raw piece of a path is `.` or `..` (each dot raw or `%2E` in any case), up to a
/// `;` that starts segment parameters.
fn is_dot_segment(piece: &[u8]) -> bool {
    let piece = piece
        .iter()
        .position(|&b| b == b';')
        .map_or(piece, |end| &piece[..end]);
    let (mut dots, mut i) = (0, 0);
    while i < piece.len() {
        match &piece[i..] {
            [b'.', ..] => i += 1,
            [b'%', b'2', b'e' | b'E', ..] => i += 3,
            _ => return false,
        }
        dots += 1;
        if dots > 2 {
            return false;
        }
    }
    dots > 0
}

/// Whether a raw value holds an encoded slash or backslash.
fn has_encoded_separator(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    memchr::memchr_iter(b'%', bytes).any(|i| encoded_separator(&bytes[i..]))
}

/// For a path [`check_request_path`] found [`PathCheck::EncodedSeparator`] in: whether the
/// route it matched takes every encoded separator in a `[param]` that allows it (never in a
/// match-all sub-path; template literals cannot hold `%`).
///
/// # Errors
///
/// [`PathError::EncodedSeparator`] otherwise.
///
/// # Examples
///
/// ```
/// # async fn demo() {
/// use stagegate::store::MemoryStore;
/// use stagegate::routing::{encoded_separators_allowed, PathError};
/// use stagegate::ControlPlane;
/// use stagegate::control::{NewBackend, NewGroup};
/// use stagegate::model::{
///     ApiDefinition, BackendKind, MockDefinition, ParamLocation, RequestParameter, Stage,
///     StageDefinition,
/// };
/// let cp = ControlPlane::open(MemoryStore::new()).await.unwrap();
/// let backend = cp.create_backend(NewBackend::new("mock", BackendKind::Mock)).await.unwrap();
/// let def = StageDefinition::Mock(MockDefinition { status: 200, headers: Default::default(), body: "ok".into() });
/// cp.set_stage_definition(&backend.id, Stage::TEST, def).await.unwrap();
/// let group = cp.create_group(NewGroup { name: "shop".into(), ..Default::default() }).await.unwrap();
/// let mut api = ApiDefinition::new(group.id, "file", "GET", "/f/[key]", backend.id).unwrap().anonymous();
/// api.parameters.push(RequestParameter {
///     name: "key".into(),
///     location: ParamLocation::Path,
///     allow_encoded_slash: true,
///     ..Default::default()
/// });
/// let api = cp.create_api(api).await.unwrap();
/// cp.publish(&api.id, Stage::TEST, None).await.unwrap();
///
/// let m = cp.snapshot().resolve(None, &Stage::TEST, &http::Method::GET, "/f/a%2Fb").unwrap();
/// assert_eq!(encoded_separators_allowed(&m), Ok(()));
/// # }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(demo());
/// ```
pub fn encoded_separators_allowed(found: &super::RouteMatch) -> Result<(), PathError> {
    if found.rest().is_some_and(has_encoded_separator) {
        return Err(PathError::EncodedSeparator);
    }
    let api = found.route().api();
    for (name, value) in found.params() {
        if has_encoded_separator(value)
            && !api.parameters.iter().any(|p| {
                p.allow_encoded_slash
                    && p.location == crate::model::ParamLocation::Path
                    && p.name == name
            })
        {
            return Err(PathError::EncodedSeparator);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_in_every_spelling_are_refused() {
        for bad in [
            "/.",
            "/..",
            "/p/.",
            "/p/..",
            "/p/../admin/secret.txt",
            "/p/./x",
            "/p/%2e%2e/admin",
            "/p/%2E%2E/admin",
            "/p/%2e%2E/admin",
            "/p/.%2e/admin",
            "/p/%2e./admin",
            "/p/%2e/admin",
            "/p/..%2fadmin%2fsecret.txt",
            "/p/..%2Fadmin",
            "/p/x%2f..%2fy",
            "/p/x%5c..%5cy",
            "/p/x%5C..",
            "/p/..;jsessionid=1/admin",
            "/p/%2e%2e;/admin",
        ] {
            assert_eq!(check_request_path(bad), Err(PathError::DotSegment), "{bad}");
        }
    }

    #[test]
    fn ordinary_dots_and_percent_signs_pass() {
        for ok in [
            "/",
            "/p/public.txt",
            "/p/...",
            "/p/.hidden",
            "/p/..x",
            "/p/x..",
            "/p/v1.2.3",
            "/p/%2e%2e%2e",
            "/p/%2ex",
            "/p/a%20b",
            "/p/%25",
            "/p/%2",
            "/p/%",
            "/p/",
            "//",
        ] {
            assert_eq!(check_request_path(ok), Ok(PathCheck::Clean), "{ok}");
        }
    }

    #[test]
    fn separators() {
        assert_eq!(check_request_path("/a\\b"), Err(PathError::Backslash));
        assert_eq!(check_request_path("/a\\..\\b"), Err(PathError::Backslash));
        for enc in ["/a%2fb", "/a%2Fb", "/a%5cb", "/a%5Cb", "/%2F"] {
            assert_eq!(
                check_request_path(enc),
                Ok(PathCheck::EncodedSeparator),
                "{enc}"
            );
        }
        assert!(has_encoded_separator("a%2fb"));
        assert!(has_encoded_separator("%5C"));
        assert!(!has_encoded_separator("a%2eb%25%2"));
    }

    proptest::proptest! {
        /// Whatever a path holds, a path that passes has no piece that a server decoding it
        /// once and splitting at `/` and `\` would read as a dot segment.
        #[test]
        fn accepted_paths_decode_to_no_dot_segment(raw in "/[./a%25cCeEfF2;\\\\]{0,24}") {
            if check_request_path(&raw).is_ok() {
                let decoded = percent_encoding::percent_decode_str(&raw).decode_utf8_lossy();
                for piece in decoded.split(['/', '\\']) {
                    let piece = piece.split(';').next().unwrap_or_default();
                    proptest::prop_assert!(piece != "." && piece != "..", "{raw} -> {decoded}");
                }
            }
        }
    }
}
