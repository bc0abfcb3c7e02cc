//! Compiled, immutable lookup structures and the lock-free snapshot handle.
//!
//! The data plane reads one [`Snapshot`] per request through a [`SnapshotHandle`]; the control
//! plane builds each next generation, rebuilding only the (group, stage) [`RouteTable`]s a change
//! touched.

mod confine;
mod error;
pub(crate) mod overlap;
mod snapshot;
mod table;
mod target;
mod trie;

pub use confine::{PathCheck, PathError, check_request_path, encoded_separators_allowed};
pub use error::CompileError;
pub use snapshot::{Credentials, GrantStatus, Grants, Snapshot, SnapshotHandle};
pub(crate) use snapshot::{HostIndex, MissHint};
pub(crate) use table::TableConflict;
pub use table::{LiveRoute, RouteMatch, RouteTable};
pub(crate) use target::BackendTarget;

/// Data precompiled for one live route by the data plane (parameter rules, the parsed backend
/// path, backend header names): what [`map_request`](crate::mapping::map_request) needs besides
/// the API. Opaque: build it with [`Compiled::compile`].
#[derive(Debug, Default)]
pub struct Compiled {
    /// Compiled regular expressions of the declared parameters, by index (none where a
    /// parameter has no rule).
    pub(crate) regexes: Vec<Option<regex::Regex>>,
    /// The backend path template (`backend.path`), parsed once; none when the API has none.
    pub(crate) backend_path: Option<crate::model::PathTemplate>,
    /// The backend header names written by the mapping, parsed once: one entry per declared
    /// parameter, then per constant parameter, then per system parameter, in declaration
    /// order; `None` where that parameter is not sent in a header or its name is not a valid
    /// header name. Mapping parses a name itself where this holds none or a different name
    /// (and answers an invalid one with its configuration error), so a shorter or stale list
    /// is only slower, never wrong.
    pub(crate) header_names: Vec<Option<http::HeaderName>>,
}

impl Compiled {
    /// Compiles what the data plane needs for an API.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::model::{
    ///     ApiDefinition, BackendId, GroupId, ParamLocation, RequestMode, RequestParameter,
    /// };
    /// use stagegate::routing::Compiled;
    ///
    /// let mut api = ApiDefinition::new(GroupId::generate(), "getUser", "GET", "/users/[id]", BackendId::generate()).unwrap();
    /// api.request.mode = RequestMode::Mapping;
    /// api.parameters.push(RequestParameter {
    ///     name: "lang".into(),
    ///     location: ParamLocation::Query,
    ///     backend_name: Some("X-Lang".into()),
    ///     backend_location: Some(ParamLocation::Head),
    ///     ..Default::default()
    /// });
    /// assert!(Compiled::compile(&api).is_ok());
    /// ```
    ///
    /// # Errors
    ///
    /// [`CompileError::Pattern`] for a parameter pattern that does not compile,
    /// [`CompileError::BackendPath`] for a backend path that is not a template (validation
    /// makes both rare).
    pub fn compile(api: &crate::model::ApiDefinition) -> Result<Self, CompileError> {
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
                            .map_err(|source| CompileError::Pattern {
                                param: p.name.clone(),
                                source,
                            })
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
            .map_err(CompileError::BackendPath)?;
        let header_names = header_names(api);
        Ok(Self {
            regexes,
            backend_path,
            header_names,
        })
    }
}

/// The backend header name of every parameter the mapping writes to a header (see
/// [`Compiled::header_names`]).
fn header_names(api: &crate::model::ApiDefinition) -> Vec<Option<http::HeaderName>> {
    use crate::model::ParamLocation;
    let declared = api
        .parameters
        .iter()
        .map(|p| (p.backend_location(), p.backend_name()));
    let constants = api
        .constant_parameters
        .iter()
        .map(|c| (c.location, c.backend_name.as_str()));
    let system = api
        .system_parameters
        .iter()
        .map(|s| (s.location, s.backend_name.as_str()));
    declared
        .chain(constants)
        .chain(system)
        .map(|(location, name)| {
            (location == ParamLocation::Head)
                .then(|| http::HeaderName::from_bytes(name.as_bytes()).ok())
                .flatten()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{CompileError, Compiled};
    use crate::model::{
        ApiDefinition, BackendId, GroupId, ParamLocation, RequestMode, RequestParameter,
    };

    fn api() -> ApiDefinition {
        let mut api = ApiDefinition::new(
            GroupId::generate(),
            "getUser",
            "GET",
            "/users/[id]",
            BackendId::generate(),
        )
        .unwrap();
        api.request.mode = RequestMode::Mapping;
        api
    }

    #[test]
    fn header_names_are_parsed_once_and_lowercased() {
        let mut api = api();
        api.parameters.push(RequestParameter {
            name: "lang".into(),
            location: ParamLocation::Query,
            backend_name: Some("X-Lang".into()),
            backend_location: Some(ParamLocation::Head),
            ..Default::default()
        });
        let compiled = Compiled::compile(&api).unwrap();
        assert_eq!(
            compiled.header_names[0]
                .as_ref()
                .map(http::HeaderName::as_str),
            Some("x-lang")
        );
    }

    #[test]
    fn compile_errors_are_typed_and_keep_their_messages() {
        let mut api = api();
        api.backend.path = Some("/v2/[id".into());
        let e = Compiled::compile(&api).unwrap_err();
        assert!(matches!(e, CompileError::BackendPath(_)), "{e:?}");
        assert!(e.to_string().starts_with("backend path: "), "{e}");

        let mut api = self::api();
        api.parameters.push(RequestParameter {
            name: "n".into(),
            location: ParamLocation::Query,
            regex: Some("(".into()),
            ..Default::default()
        });
        let e = Compiled::compile(&api).unwrap_err();
        assert!(
            matches!(&e, CompileError::Pattern { param, .. } if param == "n"),
            "{e:?}"
        );
        assert!(e.to_string().starts_with("parameter `n`: "), "{e}");
        assert!(std::error::Error::source(&e).is_some());
    }
}
