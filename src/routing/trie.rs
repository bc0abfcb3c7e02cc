//! [`PathTrie`]: a segment trie laid out flat for the hot path.
//!
//! A general-purpose router (matchit) walks a byte-wise radix tree whose nodes are separate
//! allocations; at 10 000 routes and more, a lookup there is a chain of cache misses. Gateway
//! templates are whole segments (`/users/[id]/*`), so this trie branches per segment: all nodes
//! of a table live in one `Vec`, all literal edges in one hash table keyed by (parent, segment),
//! and a lookup touches a handful of cache lines per path segment.
//!
//! Matching rules (the gateway's): exact segments beat `[param]`s, which beat a match-all `/*`;
//! a longer template beats a shorter one; at equal length the first differing segment decides.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

use crate::model::{PathTemplate, Segment};

const NONE: u32 = u32::MAX;

/// The deepest path the trie will walk; deeper request paths cannot match any template anyway
/// (templates are at most 1 024 bytes, so at most 512 segments).
const MAX_DEPTH: usize = 512;

#[derive(Debug, Clone, Copy)]
struct Node {
    /// The route whose template ends here.
    full: u32,
    /// The route whose template ends here with `/*`.
    catch_all: u32,
    /// The child for a `[param]` segment.
    param: u32,
}

impl Node {
    const EMPTY: Self = Self {
        full: NONE,
        catch_all: NONE,
        param: NONE,
    };
}

/// A literal edge; its segment text lives in the trie's arena.
#[derive(Debug, Clone, Copy)]
struct Edge {
    parent: u32,
    child: u32,
    start: u32,
    end: u32,
}

/// Two templates end at the same place of the trie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Occupied {
    /// The index the slot already holds.
    pub(crate) existing: usize,
}

/// Segment positions of the `[param]`s a match went through.
pub(crate) type ParamDepths = smallvec::SmallVec<[u16; 8]>;

/// A lookup result: the route index, where its parameters are, and for a match-all route the
/// byte offset of the sub-path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TrieMatch {
    pub(crate) index: usize,
    /// The path segments that matched `[param]`s, in order (so the caller need not read the
    /// route's template, which at scale is a cache miss away).
    pub(crate) params: ParamDepths,
    /// For a match-all route: where the sub-path after the prefix starts in the request path.
    pub(crate) rest_at: Option<usize>,
}

/// The segments of a request path: `/` has none, `/a/` has `a` and an empty last one.
pub(crate) fn split_path(path: &str) -> Option<smallvec::SmallVec<[&str; 16]>> {
    let body = path.strip_prefix('/')?;
    let mut segs = smallvec::SmallVec::new();
    if body.is_empty() {
        return Some(segs);
    }
    let mut start = 0;
    for (i, b) in body.bytes().enumerate() {
        if b == b'/' {
            segs.push(&body[start..i]);
            start = i + 1;
            if segs.len() == MAX_DEPTH {
                return None;
            }
        }
    }
    segs.push(&body[start..]);
    Some(segs)
}

/// A segment trie of route templates, each carrying a `usize` index.
#[derive(Debug)]
pub(crate) struct PathTrie {
    nodes: Vec<Node>,
    edges: HashTable<Edge>,
    /// The literal segments, back to back, so comparing one stays within a few cache lines.
    arena: String,
    /// Rank (segment count plus the `*`) of every route, by index, for priority decisions.
    ranks: Vec<Box<[u8]>>,
}

impl Default for PathTrie {
    fn default() -> Self {
        Self {
            nodes: vec![Node::EMPTY],
            edges: HashTable::new(),
            arena: String::new(),
            ranks: Vec::new(),
        }
    }
}

/// Per segment: 2 exact, 1 parameter, then 0 for a match-all.
fn rank(t: &PathTemplate) -> Box<[u8]> {
    let mut r: Vec<u8> = t
        .segments()
        .iter()
        .map(|s| u8::from(matches!(s, Segment::Literal(_))) + 1)
        .collect();
    if t.match_all() {
        r.push(0);
    }
    r.into_boxed_slice()
}

impl Edge {
    fn segment<'a>(&self, arena: &'a str) -> &'a str {
        &arena[self.start as usize..self.end as usize]
    }
}

fn edge_hash(parent: u32, segment: &str) -> u64 {
    FxBuildHasher.hash_one((parent, segment))
}

impl PathTrie {
    fn child(&self, parent: u32, segment: &str) -> Option<u32> {
        self.edges
            .find(edge_hash(parent, segment), |e| {
                e.parent == parent && e.segment(&self.arena) == segment
            })
            .map(|e| e.child)
    }

    /// Adds a template carrying `index`.
    ///
    /// # Errors
    ///
    /// [`Occupied`] when a template of the same shape is already there.
    pub(crate) fn insert(&mut self, template: &PathTemplate, index: usize) -> Result<(), Occupied> {
        let idx = u32::try_from(index).expect("fewer than 2^32 routes in one table");
        let mut node = 0u32;
        for seg in template.segments() {
            node = match seg {
                Segment::Literal(l) => match self.child(node, l) {
                    Some(c) => c,
                    None => {
                        let child = self.push_node();
                        let offset = |n: usize| u32::try_from(n).expect("route table under 4 GiB");
                        let start = offset(self.arena.len());
                        self.arena.push_str(l);
                        let edge = Edge {
                            parent: node,
                            child,
                            start,
                            end: offset(self.arena.len()),
                        };
                        let arena = &self.arena;
                        self.edges.insert_unique(edge_hash(node, l), edge, |e| {
                            edge_hash(e.parent, e.segment(arena))
                        });
                        child
                    }
                },
                Segment::Param(_) => match self.nodes[node as usize].param {
                    NONE => {
                        let child = self.push_node();
                        self.nodes[node as usize].param = child;
                        child
                    }
                    c => c,
                },
            };
        }
        let slot = if template.match_all() {
            &mut self.nodes[node as usize].catch_all
        } else {
            &mut self.nodes[node as usize].full
        };
        if *slot != NONE {
            return Err(Occupied {
                existing: *slot as usize,
            });
        }
        *slot = idx;
        let r = rank(template);
        if self.ranks.len() <= index {
            self.ranks.resize_with(index + 1, Box::default);
        }
        self.ranks[index] = r;
        Ok(())
    }

    /// Gives back the spare capacity of the build (tables are immutable afterwards).
    pub(crate) fn shrink(&mut self) {
        self.nodes.shrink_to_fit();
        self.arena.shrink_to_fit();
        self.ranks.shrink_to_fit();
        let arena = &self.arena;
        self.edges
            .shrink_to_fit(|e| edge_hash(e.parent, e.segment(arena)));
    }

    fn push_node(&mut self) -> u32 {
        let id = u32::try_from(self.nodes.len()).expect("fewer than 2^32 trie nodes");
        self.nodes.push(Node::EMPTY);
        id
    }

    /// The best template for a request path already split by [`split_path`].
    pub(crate) fn lookup(&self, path: &str, segs: &[&str]) -> Option<TrieMatch> {
        let mut w = Walk {
            full: NONE,
            prefix: NONE,
            prefix_depth: 0,
            params: ParamDepths::new(),
            prefix_params: ParamDepths::new(),
        };
        self.walk(0, 0, segs, &mut w);
        let prefix_wins = match (w.full, w.prefix) {
            (NONE, NONE) => return None,
            (_, NONE) => false,
            (NONE, _) => true,
            (f, p) => {
                // longer first, then segment by segment
                let (rf, rp) = (&self.ranks[f as usize], &self.ranks[p as usize]);
                (rp.len(), rp) > (rf.len(), rf)
            }
        };
        Some(if prefix_wins {
            TrieMatch {
                index: w.prefix as usize,
                params: w.prefix_params,
                // the sub-path starts at segment `prefix_depth`
                rest_at: Some(segs[w.prefix_depth].as_ptr() as usize - path.as_ptr() as usize),
            }
        } else {
            TrieMatch {
                index: w.full as usize,
                params: w.params,
                rest_at: None,
            }
        })
    }

    /// One depth-first walk in priority order (literal before parameter, segment by segment)
    /// that finds the first full match and, on the way, the deepest match-all template (the
    /// first in priority order at that depth). It stops at the first full match: a match-all
    /// template met after it can neither be longer nor rank higher.
    fn walk(&self, node: u32, depth: usize, segs: &[&str], w: &mut Walk) -> bool {
        let n = self.nodes[node as usize];
        let Some(&seg) = segs.get(depth) else {
            w.full = n.full;
            return n.full != NONE;
        };
        // a match-all needs a non-empty sub-path
        if n.catch_all != NONE
            && (w.prefix == NONE || depth > w.prefix_depth)
            && (depth + 1 < segs.len() || !seg.is_empty())
        {
            w.prefix = n.catch_all;
            w.prefix_depth = depth;
            w.prefix_params.clone_from(&w.params);
        }
        if let Some(c) = self.child(node, seg)
            && self.walk(c, depth + 1, segs, w)
        {
            return true;
        }
        if n.param == NONE || seg.is_empty() {
            return false;
        }
        // depth < MAX_DEPTH (512) fits
        w.params.push(u16::try_from(depth).unwrap_or(u16::MAX));
        if self.walk(n.param, depth + 1, segs, w) {
            return true;
        }
        w.params.pop();
        false
    }
}

/// What [`PathTrie::walk`] found so far.
struct Walk {
    full: u32,
    prefix: u32,
    prefix_depth: usize,
    /// Parameter positions on the way to the current node.
    params: ParamDepths,
    prefix_params: ParamDepths,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trie(templates: &[&str]) -> PathTrie {
        let mut t = PathTrie::default();
        for (i, s) in templates.iter().enumerate() {
            t.insert(&PathTemplate::parse(s).unwrap(), i).unwrap();
        }
        t
    }

    fn hit<'a>(
        templates: &[&'a str],
        t: &PathTrie,
        path: &str,
    ) -> Option<(&'a str, Option<String>)> {
        let segs = split_path(path)?;
        t.lookup(path, &segs).map(|m| {
            (
                templates[m.index],
                m.rest_at.map(|at| path[at..].to_owned()),
            )
        })
    }

    #[test]
    fn priorities() {
        let ts = [
            "/files/readme",
            "/files/[name]",
            "/files/*",
            "/files/docs/*",
            "/",
            "/a/",
        ];
        let t = trie(&ts);
        assert_eq!(hit(&ts, &t, "/files/readme"), Some(("/files/readme", None)));
        assert_eq!(hit(&ts, &t, "/files/x"), Some(("/files/[name]", None)));
        assert_eq!(
            hit(&ts, &t, "/files/a/b"),
            Some(("/files/*", Some("a/b".into())))
        );
        assert_eq!(
            hit(&ts, &t, "/files/docs/x/y"),
            Some(("/files/docs/*", Some("x/y".into())))
        );
        assert_eq!(hit(&ts, &t, "/files"), None);
        assert_eq!(hit(&ts, &t, "/"), Some(("/", None)));
        assert_eq!(hit(&ts, &t, "/a/"), Some(("/a/", None)));
        assert_eq!(hit(&ts, &t, "/a"), None);
        assert_eq!(hit(&ts, &t, "no-slash"), None);
    }

    #[test]
    fn parameter_positions_follow_the_winning_branch() {
        let ts = ["/[a]/x/[b]", "/[a]/[c]/*", "/k/[d]"];
        let t = trie(&ts);
        let at = |path: &str| {
            let segs = split_path(path).unwrap();
            t.lookup(path, &segs).map(|m| (m.index, m.params.to_vec()))
        };
        assert_eq!(at("/1/x/2"), Some((0, vec![0, 2])));
        // the literal `x` branch fails deeper: its parameter must not leak into the match-all's
        assert_eq!(at("/1/x/2/3"), Some((1, vec![0, 1])));
        assert_eq!(at("/k/v"), Some((2, vec![1])));
    }

    #[test]
    fn same_shape_is_occupied() {
        let mut t = trie(&["/u/[id]"]);
        assert_eq!(
            t.insert(&PathTemplate::parse("/u/[name]").unwrap(), 1),
            Err(Occupied { existing: 0 })
        );
        assert!(t.insert(&PathTemplate::parse("/u/*").unwrap(), 1).is_ok());
    }

    #[test]
    fn hostile_paths_are_bounded() {
        let t = trie(&["/[a]/[b]/*", "/x/[b]/c"]);
        let deep = "/x".repeat(100_000);
        assert!(
            split_path(&deep).is_none(),
            "too deep to match any template"
        );
        let many = "/x".repeat(400);
        let segs = split_path(&many).unwrap();
        assert!(t.lookup(&many, &segs).is_some());
    }

    /// The rule, by brute force: every template that matches, the longest rank wins, then the
    /// first differing segment (exact 2 > parameter 1 > match-all 0).
    fn reference(templates: &[PathTemplate], path: &str) -> Option<(usize, Option<String>)> {
        let segs: Vec<&str> = if path == "/" {
            Vec::new()
        } else {
            path[1..].split('/').collect()
        };
        let matches = |t: &PathTemplate| -> Option<Option<String>> {
            let k = t.segments().len();
            let fits = |n: usize| {
                t.segments().iter().zip(&segs[..n]).all(|(t, s)| match t {
                    Segment::Literal(l) => l == s,
                    Segment::Param(_) => !s.is_empty(),
                })
            };
            if t.match_all() {
                let rest = segs.get(k..).map(|r| r.join("/")).unwrap_or_default();
                (segs.len() > k && !rest.is_empty() && fits(k)).then_some(Some(rest))
            } else {
                (segs.len() == k && fits(k)).then_some(None)
            }
        };
        templates
            .iter()
            .enumerate()
            .filter_map(|(i, t)| matches(t).map(|rest| (i, rest, rank(t))))
            .max_by(|a, b| (a.2.len(), &a.2).cmp(&(b.2.len(), &b.2)))
            .map(|(i, rest, _)| (i, rest))
    }

    #[test]
    fn the_published_sofa_ordering() {
        // lowest to highest priority, as the vendor documents it
        let ts = [
            "/*",
            "/[id]",
            "/path",
            "/[id]/*",
            "/[id]/[name]",
            "/[id]/temp",
            "/path/*",
            "/path/[id]",
            "/path/temp",
            "/[id]/[name]/[path]",
        ];
        let t = trie(&ts);
        for (path, want) in [
            ("/path/temp", "/path/temp"),
            ("/path/x", "/path/[id]"),
            ("/x/temp", "/[id]/temp"),
            ("/x/y", "/[id]/[name]"),
            ("/path", "/path"),
            ("/x", "/[id]"),
            ("/path/x/y", "/[id]/[name]/[path]"),
            ("/x/y/z/w", "/[id]/*"),
            ("/path/x/y/z", "/path/*"),
        ] {
            assert_eq!(hit(&ts, &t, path).map(|h| h.0), Some(want), "{path}");
        }
    }

    #[test]
    fn agrees_with_the_rule_by_brute_force() {
        // every template over a small alphabet, and every path over it
        let parts = ["a", "b", "[p]", "[q]"];
        let mut rng = fastrand::Rng::with_seed(7);
        for _round in 0..300 {
            let mut shapes = std::collections::HashSet::new();
            let mut templates = Vec::new();
            for _ in 0..rng.usize(1..12) {
                let len = rng.usize(0..4);
                let mut s = String::new();
                let mut used = 0;
                for _ in 0..len {
                    let mut p = parts[rng.usize(0..parts.len())].to_owned();
                    if p.starts_with('[') {
                        used += 1;
                        p = format!("[p{used}]");
                    }
                    s.push('/');
                    s.push_str(&p);
                }
                if rng.bool() {
                    s.push_str("/*");
                } else if s.is_empty() || rng.u8(..) < 20 {
                    // the root, or a trailing slash (an empty last segment)
                    s.push('/');
                }
                let t = PathTemplate::parse(&s).unwrap();
                if shapes.insert(t.shape()) {
                    templates.push(t);
                }
            }
            let mut t = PathTrie::default();
            for (i, tpl) in templates.iter().enumerate() {
                t.insert(tpl, i).unwrap();
            }
            for _ in 0..200 {
                let mut path = String::new();
                for _ in 0..rng.usize(0..6) {
                    path.push('/');
                    path.push_str(["a", "b", "c", ""][rng.usize(0..4)]);
                }
                if path.is_empty() {
                    path.push('/');
                }
                let want = reference(&templates, &path);
                let got = split_path(&path).and_then(|segs| {
                    t.lookup(&path, &segs)
                        .map(|m| (m.index, m.rest_at.map(|at| path[at..].to_owned())))
                });
                assert_eq!(
                    got,
                    want,
                    "path {path:?} over {:?}",
                    templates
                        .iter()
                        .map(PathTemplate::as_str)
                        .collect::<Vec<_>>()
                );
            }
        }
    }
}
