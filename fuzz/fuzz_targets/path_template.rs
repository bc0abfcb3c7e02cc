//! The path template parser (`PathTemplate::parse`) and base-path joining.
//!
//! Input: the template on the first line; an optional group base path on the second.
//!
//! Properties of an accepted template (`{name}` segments are read as `[name]`, and the template
//! keeps the bracket spelling, so `raw` below is the input respelled):
//! * display, `as_str` and JSON all give back the text, and parsing that again gives an equal
//!   template;
//! * its segments, `[param]`s and trailing `/*` rebuild exactly the text; no literal segment is
//!   `.` or `..` or holds `/`, `[`, `]` or `*`; parameter names are unique and well-formed;
//! * `shape` is the same rebuild with names erased;
//! * joined under a base path, the result is the base (without trailing `/`) followed by the
//!   template, and its segments end with the template's.
//!
//! A refused template gets a `ValidationError` whose message stays short (the path in it is
//! truncated), whatever the input's length.

#![no_main]

use libfuzzer_sys::fuzz_target;
use stagegate::model::{PathTemplate, Segment};
use stagegate_fuzz::fields;

fuzz_target!(|data: &[u8]| {
    let [raw, base] = fields::<2>(data);
    let raw = String::from_utf8_lossy(raw);
    let base = String::from_utf8_lossy(base);
    let written = raw;
    let template = match PathTemplate::parse(&written) {
        Ok(t) => t,
        Err(e) => {
            let message = e.to_string();
            assert!(
                message.len() < 512,
                "unbounded error message: {} bytes",
                message.len()
            );
            return;
        }
    };
    // A `{name}` segment is the `[name]` one: the template keeps the bracket spelling.
    let raw = respell_braces(&written);
    assert_eq!(template.as_str(), raw);
    assert_eq!(template.to_string(), raw);
    assert_eq!(
        PathTemplate::parse(template.as_str()).as_ref(),
        Ok(&template)
    );
    let json = serde_json::to_string(&template).expect("serialises");
    assert_eq!(
        serde_json::from_str::<PathTemplate>(&json).expect("deserialises"),
        template
    );

    let rebuilt = rebuild(&template, |name| format!("[{name}]"));
    assert_eq!(rebuilt, raw, "segments do not rebuild the template");
    assert_eq!(template.shape(), rebuild(&template, |_| "[]".to_owned()));
    let mut names = Vec::new();
    for segment in template.segments() {
        match segment {
            Segment::Literal(l) => {
                assert!(l != "." && l != "..", "dot segment {l:?} accepted");
                assert!(!l.contains(['/', '[', ']', '*']), "literal {l:?}");
            }
            Segment::Param(name) => {
                assert!(!name.is_empty() && name.len() <= 64);
                assert!(
                    name.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                );
                assert!(!names.contains(name), "parameter {name} twice");
                names.push(name.clone());
            }
        }
    }
    assert!(template.params().eq(names.iter().map(String::as_str)));

    let base = (!base.is_empty()).then_some(&*base);
    match template.with_base(base) {
        Ok(joined) => {
            let expected = match base {
                None | Some("" | "/") => raw.to_string(),
                Some(b) if raw == "/" => respell_braces(b.trim_end_matches('/')),
                Some(b) => format!("{}{raw}", respell_braces(b.trim_end_matches('/'))),
            };
            assert_eq!(joined.as_str(), expected);
            if raw != "/" {
                assert!(joined.segments().ends_with(template.segments()));
                assert_eq!(joined.match_all(), template.match_all());
            }
        }
        Err(e) => assert!(e.to_string().len() < 512),
    }
});

/// The text a template's parts make, each parameter written by `param`.
fn rebuild(template: &PathTemplate, param: impl Fn(&str) -> String) -> String {
    let mut s: String = template
        .segments()
        .iter()
        .map(|seg| match seg {
            Segment::Literal(l) => format!("/{l}"),
            Segment::Param(p) => format!("/{}", param(p)),
        })
        .collect();
    if template.match_all() {
        s.push_str("/*");
    }
    if s.is_empty() {
        s.push('/');
    }
    s
}

/// `raw` with every segment that is exactly `{name}` (no other brace or bracket inside)
/// respelled `[name]`, the parser's documented reading of brace parameters.
fn respell_braces(raw: &str) -> String {
    raw.split('/')
        .map(
            |part| match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(name) if !name.contains(['{', '}', '[', ']']) => format!("[{name}]"),
                _ => part.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}
