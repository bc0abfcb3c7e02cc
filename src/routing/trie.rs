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
use crate::swar::{first_flagged, flag_bytes};

const NONE: u32 = u32::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Node {
    /// The route whose template ends here.
    full: u32,
    /// The route whose template ends here with `/*`.
    catch_all: u32,
    /// The child for a `[param]` segment.
    param: u32,
    /// What a walk needs to skip two reads, in the four bytes an edge has spare: whether
    /// literal edges leave this node ([`LITERAL`]), and the route that ends at its `[param]`
    /// child (the other bits, [`NO_ROUTE`] for none). So a segment under a node that only a
    /// `[param]` or `/*` follows (the last segment of `/users/[id]`, the sub-path of
    /// `/files/*`) costs no hash and no probe of the edge table, and a path that ends in a
    /// parameter is matched without reading the parameter's node: at 100 000 routes, a cache
    /// miss less each.
    extra: u32,
}

/// [`Node::extra`]'s flag: literal edges leave the node.
const LITERAL: u32 = 1 << 31;
/// [`Node::extra`] without a route at the `[param]` child; also one more than the highest
/// route index a table can hold.
const NO_ROUTE: u32 = LITERAL - 1;

impl Node {
    const EMPTY: Self = Self {
        full: NONE,
        catch_all: NONE,
        param: NONE,
        extra: NO_ROUTE,
    };

    fn literal(self) -> bool {
        self.extra & LITERAL != 0
    }

    /// The route whose template ends at the `[param]` child, or [`NONE`].
    fn param_full(self) -> u32 {
        match self.extra & NO_ROUTE {
            NO_ROUTE => NONE,
            i => i,
        }
    }

    /// The `[param]` child's slots as a walk needs them once the path has no segment left:
    /// only its full route.
    fn param_at_end(self) -> Self {
        Self {
            full: self.param_full(),
            ..Self::EMPTY
        }
    }
}

/// A literal edge. Its first eight bytes are kept inline, so a segment of up to eight bytes
/// (most are) is compared without reading the trie's arena, where the whole text lives; and it
/// carries a copy of the child's slots, so following it reads no node.
#[derive(Debug, Clone, Copy)]
struct Edge {
    parent: u32,
    child: u32,
    start: u32,
    len: u32,
    head: u64,
    to: Node,
}

/// Two templates end at the same place of the trie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Occupied {
    /// The index the slot already holds.
    pub(crate) existing: usize,
}

/// Where a match's first `[param]` is: its segment number and its byte offset in the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FirstParam {
    pub(crate) depth: u16,
    pub(crate) at: u32,
}

/// A lookup result: the route index, where its first parameter is (the route's template says
/// where the others are), and for a match-all route the byte offset of the sub-path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TrieMatch {
    pub(crate) index: usize,
    pub(crate) first_param: Option<FirstParam>,
    /// For a match-all route: where the sub-path after the prefix starts in the request path.
    pub(crate) rest_at: Option<usize>,
}

/// A request path's first segment, scanned once for the stage index and the walk after it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FirstSegment<'p> {
    segment: &'p [u8],
    head: u64,
    /// Where the second segment starts, or [`END`].
    next: usize,
}

/// The first segment of a path with one: `/a/b` has `a`; `/` has none, and neither has a
/// path that does not start with `/` (or is 4 GiB or longer).
#[inline]
pub(crate) fn first_segment(path: &str) -> Option<FirstSegment<'_>> {
    let bytes = path.as_bytes();
    if bytes.len() < 2 || bytes[0] != b'/' || u32::try_from(bytes.len()).is_err() {
        return None;
    }
    let (len, head) = scan_at(bytes, 1);
    Some(FirstSegment {
        segment: &bytes[1..=len],
        head,
        next: if 1 + len < bytes.len() { len + 2 } else { END },
    })
}

/// Where a lookup in one trie starts once the request's first segment is known.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Start {
    /// At the root, which has a `[param]` or match-all slot the first segment may take.
    Root,
    /// Past the first segment's literal edge, at the node it leads to (and its slots).
    After(u32, Node),
    /// Nowhere: no template of the trie can match a path with that first segment.
    Nothing,
}

/// The literal edges of a trie in one open-addressed array (linear probing; at most half
/// full while building, at most 70 % once built). A probe reads one slot, where a SwissTable reads a control group and then a bucket:
/// at 100 000 routes that is one cache miss less per path segment. Built once, then only read.
#[derive(Debug)]
#[repr(C)] // `slots` first: see `PathTrie`
struct EdgeTable {
    /// Empty slots have `parent == NONE`. Its length is a power of two, fixed between resizes.
    slots: Box<[Edge]>,
    len: usize,
}

impl Default for EdgeTable {
    fn default() -> Self {
        Self {
            slots: vec![Edge::EMPTY; 4].into_boxed_slice(),
            len: 0,
        }
    }
}

impl EdgeTable {
    #[inline(always)]
    fn position(&self, hash: u64, eq: impl Fn(&Edge) -> bool) -> Result<usize, usize> {
        let mask = self.slots.len() - 1;
        // the low bits of the hash pick the slot (truncation intended)
        #[allow(clippy::cast_possible_truncation)]
        let mut i = hash as usize & mask;
        loop {
            let e = &self.slots[i];
            if e.parent == NONE {
                return Err(i);
            }
            if eq(e) {
                return Ok(i);
            }
            i = (i + 1) & mask;
        }
    }

    fn find(&self, hash: u64, eq: impl Fn(&Edge) -> bool) -> Option<&Edge> {
        self.position(hash, eq).ok().map(|i| &self.slots[i])
    }

    fn find_mut(&mut self, hash: u64, eq: impl Fn(&Edge) -> bool) -> Option<&mut Edge> {
        self.position(hash, eq).ok().map(|i| &mut self.slots[i])
    }

    /// Adds an edge known to be absent.
    fn insert(&mut self, hash: u64, edge: Edge, rehash: impl Fn(&Edge) -> u64) {
        if (self.len + 1) * 2 > self.slots.len() {
            self.resize(self.slots.len() * 2, &rehash);
        }
        if let Err(i) = self.position(hash, |_| false) {
            self.slots[i] = edge;
            self.len += 1;
        }
    }

    /// Down to the smallest size that keeps the table at most 70 % full (a miss then probes
    /// a few neighbouring slots, mostly in the same cache line).
    fn shrink_to_fit(&mut self, rehash: impl Fn(&Edge) -> u64) {
        let fit = (self.len * 10).div_ceil(7).next_power_of_two().max(4);
        if fit < self.slots.len() {
            self.resize(fit, &rehash);
        }
    }

    fn resize(&mut self, size: usize, rehash: &impl Fn(&Edge) -> u64) {
        let old = std::mem::replace(&mut self.slots, vec![Edge::EMPTY; size].into_boxed_slice());
        for e in old.into_iter().filter(|e| e.parent != NONE) {
            if let Err(i) = self.position(rehash(&e), |_| false) {
                self.slots[i] = e;
            }
        }
    }
}

/// A map from one path segment to `V`, compared as the trie's edges are: the first eight bytes
/// inline, so a short key costs no read of its text.
#[derive(Debug)]
pub(crate) struct SegmentMap<V> {
    table: HashTable<SegmentEntry<V>>,
}

/// A key's head, the key, and its value.
type SegmentEntry<V> = (u64, Box<str>, V);

impl<V> Default for SegmentMap<V> {
    fn default() -> Self {
        Self {
            table: HashTable::new(),
        }
    }
}

impl<V> SegmentMap<V> {
    fn find(segment: &[u8], h: u64) -> (u64, u64, impl Fn(&SegmentEntry<V>) -> bool + '_) {
        let eq = move |(eh, key, _): &SegmentEntry<V>| {
            *eh == h
                && key.len() == segment.len()
                && (segment.len() <= 8 || key.as_bytes() == segment)
        };
        (edge_hash(0, segment, h), h, eq)
    }

    #[cfg(test)]
    pub(crate) fn get(&self, segment: &str) -> Option<&V> {
        let (hash, _, eq) = Self::find(segment.as_bytes(), head(segment.as_bytes()));
        self.table.find(hash, eq).map(|(_, _, v)| v)
    }

    /// The value of a request's first segment.
    #[inline]
    pub(crate) fn get_first(&self, first: &FirstSegment<'_>) -> Option<&V> {
        let (hash, _, eq) = Self::find(first.segment, first.head);
        self.table.find(hash, eq).map(|(_, _, v)| v)
    }

    /// The value of `segment`, inserted with `make` if absent.
    pub(crate) fn entry(&mut self, segment: &str, make: impl FnOnce() -> V) -> &mut V {
        let (hash, h, eq) = Self::find(segment.as_bytes(), head(segment.as_bytes()));
        let rehash = |(eh, key, _): &SegmentEntry<V>| edge_hash(0, key.as_bytes(), *eh);
        let entry = self
            .table
            .entry(hash, eq, rehash)
            .or_insert_with(|| (h, segment.into(), make()));
        &mut entry.into_mut().2
    }
}

/// A segment trie of route templates, each carrying a `usize` index.
///
/// In declaration order (`repr(C)`), so what every lookup reads comes first and a
/// [`RouteTable`](super::RouteTable) can keep it in the cache line after its own hot fields:
/// the nodes, the edge table and the root's copy, then what only some lookups read.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct PathTrie {
    nodes: Vec<Node>,
    edges: EdgeTable,
    /// A copy of the root's slots (`nodes[0]`), beside the table's other hot fields.
    root: Node,
    /// The literal segments, back to back (a lookup reads past the first eight bytes only).
    arena: String,
    /// Rank (segment count plus the `*`) of every route, by index, for priority decisions.
    ranks: Vec<Box<[u8]>>,
}

impl PathTrie {
    /// How many bytes from its start every walk reads: the nodes and the edge slots.
    #[cfg(test)]
    pub(crate) const HOT_BYTES: usize =
        std::mem::offset_of!(PathTrie, edges) + std::mem::offset_of!(EdgeTable, len);
}

impl Default for PathTrie {
    fn default() -> Self {
        Self {
            root: Node::EMPTY,
            nodes: vec![Node::EMPTY],
            edges: EdgeTable::default(),
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

/// The first eight bytes of a segment (which holds no `/`), zero-padded, as one word: what
/// [`scan`] computes for a request path, so building and lookup agree by construction.
fn head(segment: &[u8]) -> u64 {
    scan(segment).1
}

/// The hash of an edge: of its head alone when that is the whole segment (two multiplies).
fn edge_hash(parent: u32, segment: &[u8], head: u64) -> u64 {
    if segment.len() <= 8 {
        FxBuildHasher.hash_one((parent, head))
    } else {
        FxBuildHasher.hash_one((parent, segment))
    }
}

/// Where the next `/` is (segments are short: a plain loop beats a searcher's set-up).
fn slash(s: &[u8]) -> Option<usize> {
    s.iter().position(|&b| b == b'/')
}

/// The length of the segment `rest` starts with, and its [`head`], in one pass.
///
/// With eight bytes or more left, the first eight are read as one word and searched for `/`
/// all at once (the classic zero-byte test on `word ^ "////////"`: borrows only run upwards,
/// so the lowest flagged byte is exact); only a segment longer than that is searched on
/// byte by byte.
fn scan(rest: &[u8]) -> (usize, u64) {
    if let Some(first) = rest.first_chunk::<8>() {
        let word = u64::from_le_bytes(*first);
        let slashes = flag_bytes(word, b'/');
        if slashes != 0 {
            let len = first_flagged(slashes);
            // the bytes before the slash, zero-padded (`len` is 0 to 7)
            let head = word & ((1u64 << (8 * len)) - 1);
            return (len, head);
        }
        let len = 8 + slash(&rest[8..]).unwrap_or(rest.len() - 8);
        return (len, word);
    }
    let mut word = 0u64;
    for (i, &b) in rest.iter().enumerate() {
        if b == b'/' {
            return (i, word);
        }
        if i < 8 {
            word |= u64::from(b) << (8 * i);
        }
    }
    (rest.len(), word)
}

/// [`scan`] of `path[at..]`. A segment at the end of a path of eight bytes or more is read as
/// the path's last eight bytes, shifted down past the ones before `at` (so zero-padded), and
/// tested in one step as well.
#[inline(always)]
fn scan_at(path: &[u8], at: usize) -> (usize, u64) {
    let rest = &path[at..];
    if rest.len() < 8
        && let Some(last) = path.last_chunk::<8>()
    {
        // an empty rest (after a trailing `/`) would shift by 64
        if rest.is_empty() {
            return (0, 0);
        }
        let word = u64::from_le_bytes(*last) >> (8 * (8 - rest.len()));
        // the padding is zero, never a slash
        let slashes = flag_bytes(word, b'/');
        if slashes == 0 {
            return (rest.len(), word);
        }
        let len = first_flagged(slashes);
        return (len, word & ((1u64 << (8 * len)) - 1));
    }
    scan(rest)
}

impl Edge {
    const EMPTY: Self = Self {
        parent: NONE,
        child: NONE,
        start: 0,
        len: 0,
        head: 0,
        to: Node::EMPTY,
    };

    /// The edge's hash (for rehashing while building).
    fn hash(&self, arena: &str) -> u64 {
        let segment = &arena[self.start as usize..self.start as usize + self.len as usize];
        edge_hash(self.parent, segment.as_bytes(), self.head)
    }

    fn matches(&self, arena: &str, parent: u32, segment: &[u8], head: u64) -> bool {
        self.head == head
            && self.parent == parent
            && self.len as usize == segment.len()
            && (segment.len() <= 8
                || arena.as_bytes()[self.start as usize + 8..self.start as usize + segment.len()]
                    == segment[8..])
    }
}

impl PathTrie {
    fn edge(&self, parent: u32, segment: &str) -> Option<&Edge> {
        self.edge_with_head(parent, segment.as_bytes(), head(segment.as_bytes()))
    }

    #[inline(always)]
    fn edge_with_head(&self, parent: u32, segment: &[u8], head: u64) -> Option<&Edge> {
        self.edges.find(edge_hash(parent, segment, head), |e| {
            e.matches(&self.arena, parent, segment, head)
        })
    }

    /// Changes a node's slots, and the copy in the edge that leads to it (`via`: its parent
    /// and segment, for a node reached by a literal).
    fn set_node(&mut self, node: u32, via: Option<(u32, &str)>, f: impl FnOnce(&mut Node)) {
        f(&mut self.nodes[node as usize]);
        if node == 0 {
            self.root = self.nodes[0];
        }
        if let Some((parent, segment)) = via {
            let to = self.nodes[node as usize];
            let bytes = segment.as_bytes();
            let h = head(bytes);
            let arena = &self.arena;
            if let Some(e) = self.edges.find_mut(edge_hash(parent, bytes, h), |e| {
                e.matches(arena, parent, bytes, h)
            }) {
                e.to = to;
            }
        }
    }

    /// Adds a template carrying `index`.
    ///
    /// # Errors
    ///
    /// [`Occupied`] when a template of the same shape is already there.
    pub(crate) fn insert(&mut self, template: &PathTemplate, index: usize) -> Result<(), Occupied> {
        let idx = u32::try_from(index)
            .ok()
            .filter(|&i| i < NO_ROUTE)
            .expect("fewer than 2^31 - 1 routes in one table");
        let mut node = 0u32;
        // how the walk reached `node`, when by a literal
        let mut via: Option<(u32, &str)> = None;
        // the node before `node`, and how the walk reached it
        let (mut parent, mut parent_via) = (0u32, None);
        for seg in template.segments() {
            (parent, parent_via) = (node, via);
            node = match seg {
                Segment::Literal(l) => match self.edge(node, l) {
                    Some(e) => e.child,
                    None => {
                        let child = self.push_node();
                        let offset = |n: usize| u32::try_from(n).expect("route table under 4 GiB");
                        let start = offset(self.arena.len());
                        self.arena.push_str(l);
                        let edge = Edge {
                            parent: node,
                            child,
                            start,
                            len: offset(l.len()),
                            head: head(l.as_bytes()),
                            to: Node::EMPTY,
                        };
                        let arena = &self.arena;
                        self.edges
                            .insert(edge_hash(node, l.as_bytes(), edge.head), edge, |e| {
                                e.hash(arena)
                            });
                        if !self.nodes[node as usize].literal() {
                            self.set_node(node, via, |n| n.extra |= LITERAL);
                        }
                        child
                    }
                },
                Segment::Param(_) => match self.nodes[node as usize].param {
                    NONE => {
                        let child = self.push_node();
                        self.set_node(node, via, |n| n.param = child);
                        child
                    }
                    c => c,
                },
            };
            via = match seg {
                Segment::Literal(l) => Some((parent, l.as_str())),
                Segment::Param(_) => None,
            };
        }
        let n = self.nodes[node as usize];
        let existing = if template.match_all() {
            n.catch_all
        } else {
            n.full
        };
        if existing != NONE {
            return Err(Occupied {
                existing: existing as usize,
            });
        }
        let match_all = template.match_all();
        self.set_node(node, via, |n| {
            if match_all {
                n.catch_all = idx;
            } else {
                n.full = idx;
            }
        });
        if !match_all && matches!(template.segments().last(), Some(Segment::Param(_))) {
            // the parent keeps a copy for walks that end in this parameter
            self.set_node(parent, parent_via, |n| n.extra = (n.extra & LITERAL) | idx);
        }
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
        self.edges.shrink_to_fit(|e| e.hash(arena));
    }

    fn push_node(&mut self) -> u32 {
        let id = u32::try_from(self.nodes.len()).expect("fewer than 2^32 trie nodes");
        self.nodes.push(Node::EMPTY);
        id
    }

    /// The best template for a request path (which starts with `/`).
    ///
    /// The path is split as the walk goes, so only the segments the trie can use are read; a
    /// path of any depth costs at most the trie's depth in steps.
    pub(crate) fn lookup(&self, path: &str) -> Option<TrieMatch> {
        let bytes = path.as_bytes();
        if bytes.first() != Some(&b'/') || u32::try_from(bytes.len()).is_err() {
            return None;
        }
        // `/` has no segments; otherwise the first starts after the slash
        self.walk(
            bytes,
            0,
            self.root,
            0,
            if bytes.len() == 1 { END } else { 1 },
        )
    }

    /// Where a lookup of a path whose first segment is `first` starts (see [`Start`]).
    pub(crate) fn start(&self, first: &str) -> Start {
        if self.root.param != NONE || self.root.catch_all != NONE {
            return Start::Root;
        }
        self.edge(0, first)
            .map_or(Start::Nothing, |e| Start::After(e.child, e.to))
    }

    /// [`lookup`](Self::lookup) of `path`, whose first segment is `first`, from `start`
    /// (which [`start`](Self::start) gave for that segment): the same answer, without
    /// matching the first segment again.
    pub(crate) fn lookup_from(
        &self,
        start: Start,
        path: &str,
        first: &FirstSegment<'_>,
    ) -> Option<TrieMatch> {
        match start {
            Start::Root => self.lookup(path),
            Start::After(node, n) => self.walk(path.as_bytes(), node, n, 1, first.next),
            Start::Nothing => None,
        }
    }

    /// The walk from `node` (with slots `n`), at segment number `depth`, which starts at byte
    /// `at` of the path (`END` past the last one). The path starts with `/` and is under
    /// 4 GiB.
    ///
    /// The walk is depth-first in priority order (literal before parameter, segment by
    /// segment): it finds the first full match and, on the way, the deepest match-all template
    /// (the first in priority order at that depth). It stops at the first full match: a
    /// match-all template met after it can neither be longer nor rank higher. It runs as a
    /// loop: where a node has both a literal edge for the segment and a `[param]` child, the
    /// parameter branch is put aside and taken up only if the literal branch finds nothing.
    fn walk(&self, bytes: &[u8], node: u32, n: Node, depth: u32, at: usize) -> Option<TrieMatch> {
        // Where the walk stands: the node and its slots, its segment number, and where that
        // segment starts in the path.
        let (mut node, mut n, mut depth, mut at) = (node, n, depth, at);
        // How many parameters are on the way to the node, and the first of them.
        let mut params = 0u32;
        let mut first = FirstParam { depth: 0, at: 0 };
        let mut prefix = Prefix::NONE;
        let mut aside: smallvec::SmallVec<[Aside; 8]> = smallvec::SmallVec::new();
        let full = loop {
            if at == END {
                if n.full != NONE {
                    break n.full;
                }
            } else {
                let rest = &bytes[at..];
                let (len, head) = scan_at(bytes, at);
                let seg = &rest[..len];
                let next = if len < rest.len() { at + len + 1 } else { END };
                // a match-all needs a non-empty sub-path
                if n.catch_all != NONE
                    && (prefix.index == NONE || depth > prefix.depth)
                    && !rest.is_empty()
                {
                    prefix = Prefix {
                        index: n.catch_all,
                        depth,
                        at,
                        first: (params > 0).then_some(first),
                    };
                }
                let param = Aside {
                    node: n.param,
                    depth,
                    // the path is under 4 GiB (checked above)
                    at: at as u32,
                    next,
                    params,
                };
                if n.literal()
                    && let Some(e) = self.edge_with_head(node, seg, head)
                {
                    if n.param != NONE && len > 0 {
                        aside.push(param);
                    }
                    (node, n, depth, at) = (e.child, e.to, depth + 1, next);
                    continue;
                }
                if n.param != NONE && len > 0 {
                    (first, params) = param.enter(first);
                    let to = if next == END {
                        n.param_at_end()
                    } else {
                        self.nodes[n.param as usize]
                    };
                    (node, n, depth, at) = (n.param, to, depth + 1, next);
                    continue;
                }
            }
            // This branch is done: take up the last parameter branch put aside.
            let Some(a) = aside.pop() else {
                break NONE;
            };
            (first, params) = a.enter(first);
            (node, n, depth, at) = (a.node, self.nodes[a.node as usize], a.depth + 1, a.next);
        };
        let prefix_wins = match (full, prefix.index) {
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
                index: prefix.index as usize,
                first_param: prefix.first,
                rest_at: Some(prefix.at),
            }
        } else {
            TrieMatch {
                index: full as usize,
                // a full match ends the walk, so the parameters are those of its branch
                first_param: (params > 0).then_some(first),
                rest_at: None,
            }
        })
    }
}

/// Where a walk stands once the path has no segment left.
const END: usize = usize::MAX;

/// The best match-all template a walk has met so far.
struct Prefix {
    index: u32,
    depth: u32,
    /// Where its sub-path starts in the path.
    at: usize,
    first: Option<FirstParam>,
}

impl Prefix {
    const NONE: Self = Self {
        index: NONE,
        depth: 0,
        at: 0,
        first: None,
    };
}

/// A `[param]` branch a walk put aside: the parameter node, the segment number and start of
/// the segment it takes, where the next segment starts, and the parameters before it.
struct Aside {
    node: u32,
    depth: u32,
    at: u32,
    next: usize,
    params: u32,
}

impl Aside {
    /// The walk's first parameter and parameter count once it takes this branch.
    fn enter(&self, first: FirstParam) -> (FirstParam, u32) {
        let first = if self.params == 0 {
            FirstParam {
                // the trie is at most 512 deep
                depth: u16::try_from(self.depth).unwrap_or(u16::MAX),
                at: self.at,
            }
        } else {
            first
        };
        (first, self.params + 1)
    }
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
        t.lookup(path).map(|m| {
            (
                templates[m.index],
                m.rest_at.map(|at| path[at..].to_owned()),
            )
        })
    }

    #[test]
    fn scan_matches_a_byte_by_byte_reference() {
        fn reference(rest: &[u8]) -> (usize, u64) {
            let len = rest.iter().position(|&b| b == b'/').unwrap_or(rest.len());
            let mut head = 0u64;
            for (i, &b) in rest[..len].iter().take(8).enumerate() {
                head |= u64::from(b) << (8 * i);
            }
            (len, head)
        }
        each_string(11, 7, |buf| {
            assert_eq!(scan(buf), reference(buf), "{buf:?}")
        });
    }

    /// Calls `f` with every string of up to `max_len` bytes over an alphabet with the slash, a
    /// byte just below and above it, a NUL, a high byte and a letter: every combination in the
    /// first `full` positions, and beyond them varied only by position, so the count stays
    /// small.
    fn each_string(max_len: u32, full: u32, mut f: impl FnMut(&[u8])) {
        let alphabet = [b'/', b'.', b'0', 0, 0xff, b'a'];
        let mut buf = Vec::new();
        for len in 0..=max_len {
            for n in 0..6usize.pow(len.min(full)) {
                buf.clear();
                let mut k = n;
                for i in 0..len {
                    let d = if i < full {
                        k % 6
                    } else {
                        (n + i as usize) % 6
                    };
                    k /= 6;
                    buf.push(alphabet[d]);
                }
                f(&buf);
            }
        }
    }

    #[test]
    fn scan_at_matches_scan_at_every_offset() {
        each_string(10, 6, |buf| {
            for at in 0..=buf.len() {
                assert_eq!(scan_at(buf, at), scan(&buf[at..]), "{buf:?} at {at}");
            }
        });
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
        let at = |path: &'static str| {
            t.lookup(path)
                .map(|m| (m.index, m.first_param.map(|f| (f.depth, f.at))))
        };
        assert_eq!(at("/1/x/2"), Some((0, Some((0, 1)))));
        // the literal `x` branch fails deeper: its parameter must not leak into the match-all's
        assert_eq!(at("/1/x/2/3"), Some((1, Some((0, 1)))));
        assert_eq!(at("/k/v"), Some((2, Some((1, 3)))));
        let t = trie(&["/k/*", "/k/[a]/x"]);
        // the parameter branch failed; the match-all has none
        assert_eq!(t.lookup("/k/v/y").map(|m| m.first_param), Some(None));
    }

    #[test]
    fn long_and_multibyte_segments_compare_whole() {
        let ts = [
            "/abcdefgh",
            "/abcdefghi",
            "/abcdefghij/[x]",
            "/日本語のパス",
            "/日本語のパスx",
        ];
        let t = trie(&ts);
        for (i, path) in [
            "/abcdefgh",
            "/abcdefghi",
            "/abcdefghij/1",
            "/日本語のパス",
            "/日本語のパスx",
        ]
        .iter()
        .enumerate()
        {
            assert_eq!(t.lookup(path).map(|m| m.index), Some(i), "{path}");
        }
        for miss in [
            "/abcdefg",
            "/abcdefghk",
            "/abcdefghik/1",
            "/日本語のパy",
            "/abcdefgh\0",
        ] {
            assert!(t.lookup(miss).is_none(), "{miss}");
        }
    }

    #[test]
    fn segment_maps_compare_whole_keys() {
        let mut m = SegmentMap::default();
        for (i, k) in ["", "g1", "abcdefgh", "abcdefghi", "日本語のパス"]
            .iter()
            .enumerate()
        {
            *m.entry(k, || 0) += i + 1;
        }
        *m.entry("g1", || 0) += 10;
        assert_eq!(m.get(""), Some(&1));
        assert_eq!(m.get("g1"), Some(&12));
        assert_eq!(m.get("abcdefghi"), Some(&4));
        assert_eq!(m.get("日本語のパス"), Some(&5));
        for miss in ["g", "g10", "abcdefghj", "abcdefg", "日本語のパ"] {
            assert_eq!(m.get(miss), None, "{miss}");
        }
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
        // the walk goes no deeper than the trie, however deep the path
        let deep = "/x".repeat(100_000);
        let m = t.lookup(&deep).unwrap();
        assert_eq!((m.index, m.rest_at), (0, Some(5)));
        assert!(t.lookup(&"/x/y/c".repeat(1000)).is_some());
        assert!(
            t.lookup(&"/".repeat(100_000)).is_none(),
            "empty segments are no parameters"
        );
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

    /// `Node::extra` must not make edges bigger (every table holds one per literal segment,
    /// in an array at most 70 % full): it lives in padding an edge already had.
    #[test]
    fn an_edge_stays_forty_bytes() {
        assert_eq!(std::mem::size_of::<Edge>(), 40);
    }

    /// A node's slots are copied into the edge that leads to it and, for the root, beside the
    /// table's other fields; every copy must agree with the node, `literal` must mark exactly
    /// the nodes that literal edges leave (a walk skips the edge table elsewhere), and each
    /// node's copy of its parameter child's route must be that child's.
    #[test]
    fn node_copies_agree_with_the_nodes() {
        let parts = ["a", "b", "[p]", "long-segment-name", "*"];
        let mut rng = fastrand::Rng::with_seed(11);
        for _round in 0..200 {
            let mut t = PathTrie::default();
            let mut shapes = std::collections::HashSet::new();
            for i in 0..rng.usize(1..16) {
                let mut s = String::new();
                for k in 0..rng.usize(1..5) {
                    match parts[rng.usize(0..parts.len())] {
                        "*" => {
                            s.push_str("/*");
                            break;
                        }
                        "[p]" => s.push_str(&format!("/[p{k}]")),
                        lit => {
                            s.push('/');
                            s.push_str(lit);
                        }
                    }
                }
                let tpl = PathTemplate::parse(&s).unwrap();
                if shapes.insert(tpl.shape()) {
                    t.insert(&tpl, i).unwrap();
                }
            }
            if rng.bool() {
                t.shrink();
            }
            assert_eq!(t.root, t.nodes[0]);
            let mut with_edges = std::collections::HashSet::new();
            for e in t.edges.slots.iter().filter(|e| e.parent != NONE) {
                assert_eq!(e.to, t.nodes[e.child as usize], "the copy in edge {e:?}");
                with_edges.insert(e.parent);
            }
            for (i, n) in t.nodes.iter().enumerate() {
                let i = u32::try_from(i).unwrap();
                assert_eq!(n.literal(), with_edges.contains(&i), "node {i}: {n:?}");
                if n.param != NONE {
                    let full = t.nodes[n.param as usize].full;
                    assert_eq!(
                        n.param_full(),
                        full,
                        "node {i}'s copy of its parameter's route"
                    );
                } else {
                    assert_eq!(n.param_full(), NONE);
                }
            }
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
            // the same templates but those a first segment cannot reach past a literal edge,
            // so `lookup_from` starts after it
            let mut literal_first = PathTrie::default();
            for (i, tpl) in templates.iter().enumerate() {
                t.insert(tpl, i).unwrap();
                if let Some(Segment::Literal(_)) = tpl.segments().first() {
                    literal_first.insert(tpl, i).unwrap();
                }
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
                if let Some(first) = first_segment(&path) {
                    let segment = std::str::from_utf8(first.segment).unwrap();
                    for trie in [&t, &literal_first] {
                        assert_eq!(
                            trie.lookup_from(trie.start(segment), &path, &first),
                            trie.lookup(&path),
                            "{path:?}"
                        );
                    }
                }
                let want = reference(&templates, &path);
                let got = t
                    .lookup(&path)
                    .map(|m| (m.index, m.rest_at.map(|at| path[at..].to_owned())));
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
