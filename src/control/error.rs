//! [`ControlError`]: why a control-plane operation was refused.

use crate::model::{ApiId, BackendId, GroupId, PathTemplate, Stage, ValidationError};
use crate::store::StoreError;

/// Why a control-plane operation was refused. A refused operation changes nothing.
///
/// # Examples
///
/// ```
/// use stagegate::{ControlError, Stage, BackendId};
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
