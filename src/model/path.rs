//! Request path templates: `/users/[id]`, and the match-all-subpaths form `/files/*`.

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
/// # Examples
///
/// ```
/// use stagegate::PathTemplate;
/// let p = PathTemplate::parse("/users/[id]/orders").unwrap();
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

impl PathTemplate {
    /// Parses and validates a template.
    ///
    /// # Errors
    ///
    /// [`ValidationError::InvalidPath`] saying what is wrong (no leading `/`, an unbalanced `[`,
    /// a parameter that does not fill a whole segment, a repeated name, a `*` not at the end, ...).
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let bad = |reason: &str| ValidationError::InvalidPath {
            path: truncate(raw),
            reason: reason.to_owned(),
        };
        if raw.len() > MAX_PATH_LEN {
            return Err(bad("longer than 1024 bytes"));
        }
        if !raw.starts_with('/') {
            return Err(bad("must start with `/`"));
        }
        if raw.chars().any(|c| {
            c.is_control() || c.is_whitespace() || matches!(c, '?' | '#' | '{' | '}' | '%')
        }) {
            return Err(bad(
                "must not contain spaces, control characters, `?`, `#`, `%`, `{` or `}`",
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
                if opens != closes {
                    return Err(bad("unbalanced `[` or `]`"));
                }
                if opens == 0 {
                    if part == &"." || part == &".." {
                        return Err(bad("`.` and `..` segments are not allowed"));
                    }
                    segments.push(Segment::Literal((*part).to_owned()));
                    continue;
                }
                if opens > 1 || !part.starts_with('[') || !part.ends_with(']') {
                    return Err(bad("a `[param]` must fill a whole segment"));
                }
                let name = &part[1..part.len() - 1];
                if name.is_empty()
                    || name.len() > 64
                    || !name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                    || !name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                {
                    return Err(bad(
                        "parameter names are letters, digits, `_` and `-`, starting with a letter",
                    ));
                }
                if segments
                    .iter()
                    .any(|s| matches!(s, Segment::Param(p) if p == name))
                {
                    return Err(bad(&format!("parameter `{name}` appears twice")));
                }
                segments.push(Segment::Param(name.to_owned()));
            }
        }
        // Templates live as long as their API (draft, deployments, live routes): no spare room
        // from the pushes above.
        segments.shrink_to_fit();
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
        match base {
            None | Some("" | "/") => Ok(self.clone()),
            Some(b) => {
                let b = b.trim_end_matches('/');
                if self.0.raw == "/" {
                    Self::parse(b)
                } else {
                    Self::parse(&format!("{b}{}", self.0.raw))
                }
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
            "/a/{b}",
            "/../x",
        ] {
            assert!(PathTemplate::parse(bad).is_err(), "{bad}");
        }
        assert!(PathTemplate::parse(&format!("/{}", "a".repeat(2000))).is_err());
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
