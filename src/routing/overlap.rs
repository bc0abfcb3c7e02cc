//! Whether two published routes of *different* groups can receive the same request.
//!
//! Inside one group the route table ranks overlapping templates (exact before `[param]` before
//! `/*`), and only templates of the same shape conflict. Across groups there is no such rank:
//! the first group in id order (or the one bound to the host) would take the request, so any
//! request both could match is a conflict (issue 20, item 2). Two groups can receive the same
//! request when they share a domain or when either has no domain (it matches every host).

use crate::model::{PathTemplate, Segment};

/// Whether two groups' domain lists can receive the same request: a group without domains
/// matches any host.
pub(crate) fn hosts_overlap(a: &[String], b: &[String]) -> bool {
    a.is_empty()
        || b.is_empty()
        || a.iter().any(|x| {
            let x = super::snapshot::normalize_host(x);
            b.iter().any(|y| super::snapshot::normalize_host(y) == x)
        })
}

/// Whether two API methods (or `ANY`) can be the same request's.
pub(crate) fn methods_overlap(a: &str, b: &str) -> bool {
    a == b || a == "ANY" || b == "ANY"
}

/// Whether some request path matches both templates (the trie's matching rules: a `[param]` is
/// one non-empty segment; a `/*` needs a non-empty sub-path after its prefix).
pub(crate) fn templates_overlap(a: &PathTemplate, b: &PathTemplate) -> bool {
    let (sa, sb) = (a.segments(), b.segments());
    let common = sa.len().min(sb.len());
    let fits = sa[..common]
        .iter()
        .zip(&sb[..common])
        .all(|(x, y)| match (x, y) {
            (Segment::Literal(x), Segment::Literal(y)) => x == y,
            (Segment::Literal(l), Segment::Param(_)) | (Segment::Param(_), Segment::Literal(l)) => {
                !l.is_empty()
            }
            (Segment::Param(_), Segment::Param(_)) => true,
        });
    if !fits {
        return false;
    }
    match (a.match_all(), b.match_all()) {
        (false, false) => sa.len() == sb.len(),
        (true, true) => true,
        // the exact one is longer than the match-all's prefix, and what it has beyond the
        // prefix is a non-empty sub-path
        (true, false) => extends(sb, sa.len()),
        (false, true) => extends(sa, sb.len()),
    }
}

/// Whether the segments of an exact template past `prefix` segments are a non-empty sub-path.
fn extends(exact: &[Segment], prefix: usize) -> bool {
    match exact.get(prefix..) {
        None | Some([]) => false,
        Some([Segment::Literal(l)]) => !l.is_empty(),
        Some(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> PathTemplate {
        PathTemplate::parse(s).unwrap()
    }

    /// The matching rule by brute force (the trie's reference, see `trie.rs`).
    fn matches(t: &PathTemplate, path: &str) -> bool {
        let segs: Vec<&str> = if path == "/" {
            Vec::new()
        } else {
            path[1..].split('/').collect()
        };
        let k = t.segments().len();
        let fits = |n: usize| {
            t.segments().iter().zip(&segs[..n]).all(|(t, s)| match t {
                Segment::Literal(l) => l == s,
                Segment::Param(_) => !s.is_empty(),
            })
        };
        if t.match_all() {
            segs.len() > k && !segs[k..].join("/").is_empty() && fits(k)
        } else {
            segs.len() == k && fits(k)
        }
    }

    #[test]
    fn overlap_agrees_with_brute_force() {
        let templates = [
            "/", "/a", "/b", "/a/", "/[x]", "/[x]/", "/a/b", "/a/[x]", "/[x]/b", "/[x]/[y]", "/*",
            "/a/*", "/[x]/*", "/a/b/*", "/a/b/c", "/b/*", "/a//*",
        ];
        // every path of up to four segments from these pieces
        let pieces = ["", "a", "b", "c", "z"];
        let mut paths = vec!["/".to_owned()];
        let mut frontier = vec![String::new()];
        for _ in 0..4 {
            let mut next = Vec::new();
            for p in &frontier {
                for s in pieces {
                    next.push(format!("{p}/{s}"));
                }
            }
            paths.extend(next.iter().cloned());
            frontier = next;
        }
        for a in templates {
            let Ok(ta) = PathTemplate::parse(a) else {
                continue;
            };
            for b in templates {
                let Ok(tb) = PathTemplate::parse(b) else {
                    continue;
                };
                let brute = paths.iter().any(|p| matches(&ta, p) && matches(&tb, p));
                assert_eq!(templates_overlap(&ta, &tb), brute, "{a} vs {b}");
            }
        }
    }

    #[test]
    fn the_reported_takeover_overlaps() {
        assert!(templates_overlap(&t("/hello/[name]"), &t("/hello/[who]")));
        assert!(templates_overlap(&t("/hello/[name]"), &t("/hello/bob")));
        assert!(templates_overlap(&t("/*"), &t("/hello/[name]")));
        assert!(!templates_overlap(&t("/hello/[name]"), &t("/bye/[name]")));
        assert!(!templates_overlap(&t("/hello/*"), &t("/hello")));
    }

    #[test]
    fn hosts() {
        let none: Vec<String> = vec![];
        let a = vec!["api.example.com".to_owned()];
        let a2 = vec!["API.example.com:443".to_owned(), "x.example.com".to_owned()];
        let b = vec!["b.example.com".to_owned()];
        assert!(hosts_overlap(&none, &a));
        assert!(hosts_overlap(&a, &none));
        assert!(hosts_overlap(&a, &a2));
        assert!(!hosts_overlap(&a, &b));
        assert!(methods_overlap("GET", "ANY"));
        assert!(!methods_overlap("GET", "POST"));
    }
}
