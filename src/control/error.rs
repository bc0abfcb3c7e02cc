//! [`ControlError`]: why a control-plane operation was refused.

use super::config::ConfigIssue;
use crate::model::{ApiId, BackendId, GroupId, PathTemplate, Stage, ValidationError};
use crate::routing::CompileError;
use crate::store::{Revision, StoreError};

/// Why a control-plane operation was refused. A refused operation changes nothing.
///
/// # Examples
///
/// ```
/// use stagegate::ControlError;
/// use stagegate::model::{BackendId, Stage};
/// let e = ControlError::NoDefinition { backend_id: BackendId::parse("b1").unwrap(), backend_name: "testHttp".into(), stage: Stage::PRE };
/// assert_eq!(e.to_string(), "backend service `testHttp` (b1) has no definition in stage PRE");
/// assert!(e.is_refusal());
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// The input is not valid.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// Something named does not exist.
    #[error("{what} `{id}` not found")]
    NotFound {
        /// What kind of thing.
        what: &'static str,
        /// Its id.
        id: String,
    },
    /// A name or key is already taken.
    #[error("{what} `{name}` already exists")]
    AlreadyExists {
        /// What kind of thing.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// Publishing needs a definition of the API's backend service in the target stage.
    #[error("backend service `{backend_name}` ({backend_id}) has no definition in stage {stage}")]
    NoDefinition {
        /// The backend service.
        backend_id: BackendId,
        /// Its name.
        backend_name: String,
        /// The stage.
        stage: Stage,
    },
    /// Two published APIs would match the same request: in one group, or in two groups that
    /// can receive the same request (a shared domain, or a group without domains).
    #[error(
        "`{method} {path}` conflicts with published API `{existing_name}` ({existing}) of group {existing_group} in stage {stage}"
    )]
    RouteConflict {
        /// The method of the API being published.
        method: String,
        /// Its full path (group base path included).
        path: PathTemplate,
        /// The API already published.
        existing: ApiId,
        /// Its name.
        existing_name: String,
        /// Its group.
        existing_group: GroupId,
        /// The stage.
        stage: Stage,
    },
    /// The resource is still used and cannot be deleted.
    #[error("{what} `{id}` is still used by {users}")]
    InUse {
        /// What kind of thing.
        what: &'static str,
        /// Its id.
        id: String,
        /// Who uses it.
        users: String,
    },
    /// The API is not published in that stage.
    #[error("api `{api}` is not published in stage {stage}")]
    NotPublished {
        /// The API.
        api: ApiId,
        /// The stage.
        stage: Stage,
    },
    /// An operation that cannot apply to this resource (e.g. changing a backend's type).
    #[error("{0}")]
    Refused(String),
    /// A configuration document has errors: every one found, each naming its object and field.
    /// Nothing was applied.
    #[error("{}", issues_text(issues))]
    InvalidConfig {
        /// Every problem found.
        issues: Vec<ConfigIssue>,
    },
    /// The configuration changed since the plan was made: nothing was applied; plan again.
    #[error(
        "the configuration changed since the plan was made (at revision {planned}, now {current}); nothing was applied: plan again"
    )]
    Stale {
        /// The store revision the plan was made at.
        planned: Revision,
        /// The revision now.
        current: Revision,
    },
    /// The store failed; nothing was changed. For a full disk or another I/O error the
    /// message says so (and names the file); for a store that cannot be reached it names the
    /// store (never a password) and the cause.
    #[error("store failed{}", store_detail(.0))]
    Store(#[from] StoreError),
}

/// What of a store failure a caller is told: the I/O failure and the file (the operator's to
/// act on), never a record's content.
fn store_detail(e: &StoreError) -> String {
    match e {
        StoreError::Io { .. }
        | StoreError::Locked { .. }
        | StoreError::Unavailable { .. }
        | StoreError::SchemaTooNew { .. } => format!(": {e}"),
        StoreError::Conflict { .. } => {
            ": another node changed the same record at the same time; nothing was written \
             (read it again and retry)"
                .to_owned()
        }
        _ => String::new(),
    }
}

/// "2 errors in the configuration document:" and one line per issue.
fn issues_text(issues: &[ConfigIssue]) -> String {
    let mut s = format!(
        "{} error{} in the configuration document:",
        issues.len(),
        if issues.len() == 1 { "" } else { "s" }
    );
    for i in issues {
        s.push_str("\n- ");
        s.push_str(&i.to_string());
    }
    s
}

/// A refused certificate or key: a validation error of its field (`certificate` or
/// `private_key`), so the admin API answers 400 naming the field and the problem.
#[cfg(feature = "tls")]
impl From<crate::tls::CertError> for ControlError {
    fn from(e: crate::tls::CertError) -> Self {
        Self::Validation(ValidationError::InvalidField {
            field: e.field().to_owned(),
            reason: e.reason(),
        })
    }
}

impl ControlError {
    /// Whether the operation was refused because of the request (as opposed to a store failure).
    #[must_use]
    pub fn is_refusal(&self) -> bool {
        !matches!(self, Self::Store(_))
    }

    pub(crate) fn not_found(what: &'static str, id: impl ToString) -> Self {
        Self::NotFound {
            what,
            id: id.to_string(),
        }
    }

    pub(crate) fn in_use(what: &'static str, id: impl ToString, users: String) -> Self {
        Self::InUse {
            what,
            id: id.to_string(),
            users,
        }
    }
}

/// Why one published API could not be compiled into a live route. The messages are the ones
/// reports and refusals have always carried.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RouteCompileError {
    /// The API's group or backend service is gone.
    #[error(transparent)]
    Missing(Box<ControlError>),
    /// The backend service has no definition in the stage.
    #[error("backend service `{backend_name}` has no definition in stage {stage}")]
    NoDefinition { backend_name: String, stage: Stage },
    /// An OSS definition, but the API says nothing about the object.
    #[error("an OSS definition needs the API's backend.oss (action and object key)")]
    OssWithoutBinding,
    /// The group's base path and the API's path do not make a valid template.
    #[error(transparent)]
    Template(ValidationError),
    /// The backend definition or the API's parameter rules do not compile.
    #[error(transparent)]
    Compile(#[from] CompileError),
}

#[cfg(test)]
mod tests {
    use super::{ControlError, RouteCompileError};
    use crate::model::Stage;
    use crate::routing::CompileError;

    #[test]
    fn route_compile_errors_keep_the_messages_reports_carry() {
        let cases = [
            (
                RouteCompileError::NoDefinition {
                    backend_name: "testHttp".into(),
                    stage: Stage::PRE,
                },
                "backend service `testHttp` has no definition in stage PRE",
            ),
            (
                RouteCompileError::OssWithoutBinding,
                "an OSS definition needs the API's backend.oss (action and object key)",
            ),
            (
                RouteCompileError::Missing(Box::new(ControlError::not_found("group", "g1"))),
                "group `g1` not found",
            ),
            (
                CompileError::MockStatusInformational(101).into(),
                "mock status 101 is informational, not a response",
            ),
        ];
        for (e, message) in cases {
            assert_eq!(e.to_string(), message);
        }
    }
}
