//! Request path templates: `/users/[id]` (or `/users/{id}`, the same template), and the
//! match-all-subpaths form `/files/*`.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ValidationError;
use super::id::truncate;

/// One segment of a [`PathTemplate`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Segment {
    /// Literal text.
    Literal(String),
    /// A `[name]` parameter filling the whole segment.
    Param(String),
}

/// A validated path with `[param]` segments and an optional trailing `/*` (match all sub-paths).
///
/// A parameter may also be spelled `{param}`, as OpenAPI and axum write it: the template is
/// kept in the bracket spelling, so `/users/{id}` and `/users/[id]` are one template.
///
/// # Examples
///
/// ```
/// use stagegate::model::PathTemplate;
/// let p = PathTemplate::parse("/users/[id]/orders").unwrap();
/// assert_eq!(PathTemplate::parse("/users/{id}/orders").unwrap(), p);
/// assert_eq!(p.as_str(), "/users/[id]/orders");
/// assert_eq!(p.params().collect::<Vec<_>>(), ["id"]);
/// assert!(!p.match_all());
/// assert!(PathTemplate::parse("/files/*").unwrap().match_all());
/// assert!(PathTemplate::parse("/users/[id").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PathTemplate(Arc<Parsed>);

/// A parsed template, shared by its clones: a live route holds its API's template (the same
/// value when the group has no base path) without a copy of every segment.
#[derive(PartialEq, Eq, Hash)]
struct Parsed {
    raw: String,
    segments: Vec<Segment>,
    match_all: bool,
}

/// The longest path template accepted.
pub const MAX_PATH_LEN: usize = 1024;

/// Whether `raw` holds a space, a control character, `?`, `#`, `%`, `{` or `}` (any Unicode
/// white space or control character, for text that is not ASCII). ASCII text, nearly every
/// template, is checked byte by byte; `char`'s Unicode tables are consulted only for the rest.
fn has_forbidden_char(raw: &str) -> bool {
    let forbidden =
        |c: char| c.is_control() || c.is_whitespace() || matches!(c, '?' | '#' | '{' | '}' | '%');
    if raw.is_ascii() {
        // ASCII controls are 0x00-0x1f and 0x7f; ASCII white space is those and the space
        raw.bytes()
            .any(|b| b <= b' ' || b == 0x7f || matches!(b, b'?' | b'#' | b'{' | b'}' | b'%'))
    } else {
        raw.chars().any(forbidden)
    }
}

/// Adds one non-empty segment without `*`, given how many `[` and `]` it holds: a literal, or a
/// `[param]` that fills the whole segment.
fn push_segment(
    part: &str,
    opens: usize,
    closes: usize,
    segments: &mut Vec<Segment>,
) -> Result<(), String> {
    if opens != closes {
        return Err("unbalanced `[` or `]`".into());
    }
    if opens == 0 {
        if part == "." || part == ".." {
            return Err("`.` and `..` segments are not allowed".into());
        }
        segments.push(Segment::Literal(part.to_owned()));
        return Ok(());
    }
    if opens > 1 || !part.starts_with('[') || !part.ends_with(']') {
        return Err("a `[param]` (or `{param}`) must fill a whole segment".into());
    }
    let name = &part[1..part.len() - 1];
    check_param_name(name, segments)?;
    segments.push(Segment::Param(name.to_owned()));
    Ok(())
}

/// The checks a template's text gets before its segments: its length and its leading `/`.
fn check_start(raw: &str) -> Result<(), &'static str> {
    if raw.len() > MAX_PATH_LEN {
        return Err("longer than 1024 bytes");
    }
    if !raw.starts_with('/') {
        return Err("must start with `/`");
    }
    Ok(())
}

/// Why `name` cannot name the next `[param]` after `segments`: not letters, digits, `_` and
/// `-` starting with a letter or `_` (at most 64 bytes), or already used.
fn check_param_name(name: &str, segments: &[Segment]) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 64
        || !name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(
            "parameter names are letters, digits, `_` and `-`, starting with a letter".to_owned(),
        );
    }
    if segments
        .iter()
        .any(|s| matches!(s, Segment::Param(p) if p == name))
    {
        return Err(format!("parameter `{name}` appears twice"));
    }
    Ok(())
}

/// `raw` with every segment spelled `{name}` respelled `[name]`; `None` when it has no `{`.
///
/// Only a brace pair filling a whole segment is respelled; any other brace stays and is
/// refused by the parser with the rest of the forbidden characters.
fn braces_to_brackets(raw: &str) -> Option<String> {
    if !raw.as_bytes().contains(&b'{') {
        return None;
    }
    let mut out = String::with_capacity(raw.len());
    for (i, part) in raw.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some(name) if !name.contains(['{', '}', '[', ']']) => {
                out.push('[');
                out.push_str(name);
                out.push(']');
            }
            _ => out.push_str(part),
        }
    }
    Some(out)
}

impl PathTemplate {
    /// Parses and validates a template. A parameter is `[name]` or `{name}` (kept as
    /// `[name]`).
    ///
    /// # Errors
    ///
    /// [`ValidationError::InvalidPath`] saying what is wrong (no leading `/`, an unbalanced `[`,
    /// a parameter that does not fill a whole segment, a repeated name, a `*` not at the end, ...).
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::model::PathTemplate;
    /// assert_eq!(PathTemplate::parse("/u/{id}").unwrap().as_str(), "/u/[id]");
    /// let e = PathTemplate::parse("/u/x{id}").unwrap_err().to_string();
    /// assert!(e.contains("/u/x{id}"), "{e}");
    /// ```
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        match braces_to_brackets(raw) {
            None => Self::parse_canonical(raw, raw),
            Some(canonical) => Self::parse_canonical(&canonical, raw),
        }
    }

    /// Parses `raw` (in the bracket spelling); errors name `written`, the template as given.
    fn parse_canonical(raw: &str, written: &str) -> Result<Self, ValidationError> {
        let bad = |reason: &str| ValidationError::InvalidPath {
            path: truncate(written),
            reason: reason.to_owned(),
        };
        check_start(raw).map_err(bad)?;
        if has_forbidden_char(raw) {
            return Err(bad(
                "must not contain spaces, control characters, `?`, `#` or `%`, nor `{` or `}` \
                 other than around a whole-segment parameter (`{id}`, the same as `[id]`)",
            ));
        }
        // Templates live as long as their API (draft, deployments, live routes), so the vector
        // is sized exactly: one segment per `/`, less the `*` of a match-all template.
        let slashes = raw.bytes().filter(|&b| b == b'/').count();
        let mut segments =
            Vec::with_capacity(slashes - usize::from(raw == "/" || raw.ends_with("/*")));
        let mut match_all = false;
        if raw != "/" {
            let mut parts = raw[1..].split('/').peekable();
            while let Some(part) = parts.next() {
                let last = parts.peek().is_none();
                let bytes = part.as_bytes();
                if part == "*" {
                    if !last {
                        return Err(bad("`*` may only be the last segment"));
                    }
                    match_all = true;
                    continue;
                }
                if part.is_empty() {
                    if last {
                        // a trailing slash is literal
                        segments.push(Segment::Literal(String::new()));
                        continue;
                    }
                    return Err(bad("empty segment (`//`)"));
                }
                if bytes.contains(&b'*') {
                    return Err(bad("`*` must be a whole segment at the end"));
                }
                let opens = bytes.iter().filter(|&&b| b == b'[').count();
                let closes = bytes.iter().filter(|&&b| b == b']').count();
                push_segment(part, opens, closes, &mut segments).map_err(|r| bad(&r))?;
            }
        }
        Ok(Self(Arc::new(Parsed {
            raw: raw.to_owned(),
            segments,
            match_all,
        })))
    }

    /// The template as written.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0.raw
    }

    /// The segments, without a trailing `*`.
    #[must_use]
    pub fn segments(&self) -> &[Segment] {
        &self.0.segments
    }

    /// Whether the template ends in `/*` and matches every sub-path.
    #[must_use]
    pub fn match_all(&self) -> bool {
        self.0.match_all
    }

    /// The parameter names, in order.
    pub fn params(&self) -> impl Iterator<Item = &str> {
        self.0.segments.iter().filter_map(|s| match s {
            Segment::Param(p) => Some(p.as_str()),
            Segment::Literal(_) => None,
        })
    }

    /// The template with parameter names erased: two templates with the same shape match the
    /// same requests.
    #[must_use]
    pub fn shape(&self) -> String {
        let mut s = String::new();
        for seg in &self.0.segments {
            s.push('/');
            match seg {
                Segment::Literal(l) => s.push_str(l),
                Segment::Param(_) => s.push_str("[]"),
            }
        }
        if self.0.match_all {
            s.push_str("/*");
        }
        if s.is_empty() {
            s.push('/');
        }
        s
    }

    /// Joins a base path (`/qqq`) in front of this template.
    ///
    /// # Errors
    ///
    /// When the result is not a valid template.
    pub fn with_base(&self, base: Option<&str>) -> Result<Self, ValidationError> {
        match self.joined(base) {
            None => Ok(self.clone()),
            Some((b, "")) => Self::parse(b),
            Some((b, path)) => Self::parse(&format!("{b}{path}")),
        }
    }

    /// The text [`with_base`](Self::with_base) parses, as its two halves; `None` when there is
    /// no base to join and the template stays as it is.
    fn joined<'a>(&'a self, base: Option<&'a str>) -> Option<(&'a str, &'a str)> {
        match base {
            None | Some("" | "/") => None,
            Some(b) => {
                let b = b.trim_end_matches('/');
                Some((b, if self.0.raw == "/" { "" } else { &self.0.raw }))
            }
        }
    }

    /// Whether this template is what [`with_base`](Self::with_base) makes of `path` under
    /// `base`, decided on the text alone: a template is determined by its text, so `true` means
    /// `path.with_base(base)` equals `self`, without parsing or allocating. How a route table
    /// rebuild recognises a route whose group and API are unchanged.
    pub(crate) fn is_with_base(&self, path: &PathTemplate, base: Option<&str>) -> bool {
        let raw = self.0.raw.as_str();
        match path.joined(base) {
            None => raw == path.0.raw,
            Some((b, rest)) => {
                raw.len() == b.len() + rest.len() && raw.starts_with(b) && raw.ends_with(rest)
            }
        }
    }
}

impl fmt::Display for PathTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.raw)
    }
}

impl fmt::Debug for PathTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PathTemplate({})", self.0.raw)
    }
}

impl Serialize for PathTemplate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.raw)
    }
}

impl<'de> Deserialize<'de> for PathTemplate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        super::id::deserialize_parsed(d, "a path template", Self::parse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_good_templates() {
        for ok in [
            "/",
            "/a",
            "/a/[b]/c",
            "/a/*",
            "/[x]/*",
            "/v1/items/",
            "/a-b/c_d.json",
        ] {
            assert!(PathTemplate::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn is_with_base_agrees_with_with_base() {
        let paths = ["/", "/ping", "/a/[b]/c", "/a/*", "/[x]/*", "/v1/items/"];
        let bases = [
            None,
            Some(""),
            Some("/"),
            Some("/qqq"),
            Some("/qqq/"),
            Some("/qqq//"),
            Some("/q"),
            Some("/qqq/ping"),
        ];
        let mut made = Vec::new();
        for p in paths {
            for b in bases {
                if let Ok(t) = PathTemplate::parse(p).unwrap().with_base(b) {
                    made.push(t);
                }
            }
        }
        for t in &made {
            for p in paths {
                let path = PathTemplate::parse(p).unwrap();
                for b in bases {
                    let expected = path.with_base(b).is_ok_and(|w| w == *t);
                    assert_eq!(
                        t.is_with_base(&path, b),
                        expected,
                        "{t} from {p} under {b:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn refuses_bad_templates() {
        for bad in [
            "",
            "a",
            "/a/[b",
            "/a/b]",
            "/a/x[b]",
            "/a/[b][c]",
            "/a/[b]/[b]",
            "/*/a",
            "/a*",
            "/a//b",
            "/a b",
            "/a?x",
            "/[]",
            "/[1x]",
            "/a/x{b}",
            "/a/{b",
            "/a/{b}}",
            "/a/{[b]}",
            "/a/{}",
            "/../x",
        ] {
            assert!(PathTemplate::parse(bad).is_err(), "{bad}");
        }
        assert!(PathTemplate::parse(&format!("/{}", "a".repeat(2000))).is_err());
    }

    /// The parser as it was before its byte-level rewrite, kept to check the rewrite against:
    /// its character scan, split, bracket counts and segment vector. What the rewrite did not
    /// touch (the opening checks, how a counted segment is classified, the parameter-name
    /// rule) is shared.
    fn reference(written: &str) -> Result<PathTemplate, ValidationError> {
        let canonical = braces_to_brackets(written);
        let raw = canonical.as_deref().unwrap_or(written);
        let bad = |reason: &str| ValidationError::InvalidPath {
            path: truncate(written),
            reason: reason.to_owned(),
        };
        check_start(raw).map_err(bad)?;
        if raw.chars().any(|c| {
            c.is_control() || c.is_whitespace() || matches!(c, '?' | '#' | '{' | '}' | '%')
        }) {
            return Err(bad(
                "must not contain spaces, control characters, `?`, `#` or `%`, nor `{` or `}` \
                 other than around a whole-segment parameter (`{id}`, the same as `[id]`)",
            ));
        }
        let mut segments = Vec::new();
        let mut match_all = false;
        if raw != "/" {
            let parts: Vec<&str> = raw[1..].split('/').collect();
            let last = parts.len() - 1;
            for (i, part) in parts.iter().enumerate() {
                if *part == "*" {
                    if i != last {
                        return Err(bad("`*` may only be the last segment"));
                    }
                    match_all = true;
                    continue;
                }
                if part.is_empty() {
                    if i == last {
                        // a trailing slash is literal
                        segments.push(Segment::Literal(String::new()));
                        continue;
                    }
                    return Err(bad("empty segment (`//`)"));
                }
                if part.contains('*') {
                    return Err(bad("`*` must be a whole segment at the end"));
                }
                let opens = part.matches('[').count();
                let closes = part.matches(']').count();
                push_segment(part, opens, closes, &mut segments).map_err(|r| bad(&r))?;
            }
        }
        // Templates live as long as their API (draft, deployments, live routes): no spare room
        // from the pushes above.
        segments.shrink_to_fit();
        Ok(PathTemplate(Arc::new(Parsed {
            raw: raw.to_owned(),
            segments,
            match_all,
        })))
    }

    /// Templates from path-like pieces: slashes, brackets, stars, dots, forbidden and
    /// multi-byte characters, in any order.
    fn template() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let piece = prop_oneof![
            Just("/"),
            Just("["),
            Just("]"),
            Just("*"),
            Just("."),
            Just("a"),
            Just("id"),
            Just("_x-1"),
            Just("9"),
            Just(" "),
            Just("\t"),
            Just("?"),
            Just("%"),
            Just("{"),
            Just("}"),
            Just("\u{7f}"),
            Just("\u{85}"),
            Just("\u{a0}"),
            Just("é"),
            Just("\u{2028}"),
        ];
        proptest::collection::vec(piece, 0..16).prop_map(|p| {
            let mut s = String::from("/");
            s.extend(p);
            s
        })
    }

    proptest::proptest! {
        #[test]
        fn parse_agrees_with_the_reference(raw in template()) {
            let (new, old) = (PathTemplate::parse(&raw), reference(&raw));
            match (&new, &old) {
                (Ok(n), Ok(o)) => {
                    proptest::prop_assert_eq!(n, o);
                    proptest::prop_assert_eq!(n.segments().len(), n.0.segments.capacity());
                }
                (Err(n), Err(o)) => proptest::prop_assert_eq!(n.to_string(), o.to_string()),
                _ => proptest::prop_assert!(false, "{raw:?}: {new:?} vs {old:?}"),
            }
        }

        #[test]
        fn parse_agrees_with_the_reference_on_any_text(raw in "/\\PC{0,24}") {
            let (new, old) = (PathTemplate::parse(&raw), reference(&raw));
            proptest::prop_assert_eq!(new.map_err(|e| e.to_string()), old.map_err(|e| e.to_string()));
        }
    }

    #[test]
    fn brace_parameters_are_the_bracket_template() {
        for (braces, brackets) in [
            ("/users/{id}", "/users/[id]"),
            ("/a/{b}/c/{d}/*", "/a/[b]/c/[d]/*"),
            ("/{x}", "/[x]"),
            ("/a/{b}/", "/a/[b]/"),
        ] {
            let b = PathTemplate::parse(braces).unwrap();
            assert_eq!(b, PathTemplate::parse(brackets).unwrap(), "{braces}");
            assert_eq!(b.as_str(), brackets);
            assert_eq!(b.shape(), PathTemplate::parse(brackets).unwrap().shape());
        }
        // mixed spellings, and a repeated name across spellings
        assert_eq!(
            PathTemplate::parse("/a/{b}/[c]").unwrap().as_str(),
            "/a/[b]/[c]"
        );
        let e = PathTemplate::parse("/a/{b}/[b]").unwrap_err().to_string();
        assert!(e.contains("`b` appears twice"), "{e}");
        // errors name the template as written
        let e = PathTemplate::parse("/a/{1b}").unwrap_err().to_string();
        assert!(e.contains("/a/{1b}"), "{e}");
    }

    #[test]
    fn shape_erases_names() {
        let a = PathTemplate::parse("/u/[id]").unwrap();
        let b = PathTemplate::parse("/u/[name]").unwrap();
        assert_eq!(a.shape(), b.shape());
        assert_ne!(a.shape(), PathTemplate::parse("/u/*").unwrap().shape());
    }

    #[test]
    fn base_path_join() {
        let p = PathTemplate::parse("/users/[id]").unwrap();
        assert_eq!(
            p.with_base(Some("/qqq")).unwrap().as_str(),
            "/qqq/users/[id]"
        );
        assert_eq!(
            p.with_base(Some("/qqq/")).unwrap().as_str(),
            "/qqq/users/[id]"
        );
        assert_eq!(p.with_base(None).unwrap().as_str(), "/users/[id]");
    }
}
