//! Compiled, immutable lookup structures and the lock-free snapshot handle.
//!
//! The data plane reads one [`Snapshot`] per request through a [`SnapshotHandle`]; the control
//! plane builds each next generation, rebuilding only the (group, stage) [`RouteTable`]s a change
//! touched.

mod snapshot;
mod table;
mod target;
mod trie;

pub(crate) use snapshot::HostIndex;
pub use snapshot::{Credentials, GrantStatus, Grants, Snapshot, SnapshotHandle};
pub use table::{LiveRoute, RouteMatch, RouteTable, TableConflict};
pub use target::BackendTarget;

/// Data precompiled for one live route by the data plane (backend targets, parameter rules).
#[derive(Debug, Default)]
pub struct Compiled {
    /// Compiled regular expressions of the declared parameters, by index (none where a
    /// parameter has no rule).
    pub regexes: Vec<Option<regex::Regex>>,
    /// The backend path template (`backend.path`), parsed once; none when the API has none.
    pub backend_path: Option<crate::model::PathTemplate>,
}

impl Compiled {
    /// Compiles what the data plane needs for an API.
    ///
    /// # Errors
    ///
    /// A message when something cannot be compiled (validation makes this rare).
    pub fn compile(api: &crate::model::ApiDefinition) -> Result<Self, String> {
        let regexes = api
            .parameters
            .iter()
            .map(|p| {
                p.regex
                    .as_deref()
                    .map(|r| {
                        regex::RegexBuilder::new(&format!("^(?:{r})$"))
                            .size_limit(1 << 20)
                            .build()
                            .map_err(|e| format!("parameter `{}`: {e}", p.name))
                    })
                    .transpose()
            })
            .collect::<Result<_, _>>()?;
        let backend_path = api
            .backend
            .path
            .as_deref()
            .map(|p| {
                // The same text as the request path (a passthrough of the path, the common
                // case) parses to the same template: share it instead of a parse per route.
                if p == api.request.path.as_str() {
                    Ok(api.request.path.clone())
                } else {
                    crate::model::PathTemplate::parse(p)
                }
            })
            .transpose()
            .map_err(|e| format!("backend path: {e}"))?;
        Ok(Self {
            regexes,
            backend_path,
        })
    }
}
