//! Per-API reports of cascades.

use serde::{Deserialize, Serialize};

use crate::model::{ApiDefinition, ApiId, Stage};

/// What a cascade did to one published API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ReportResult {
    /// Re-pointed to the new definition (no republish needed).
    Republished,
    /// Taken out of the stage.
    Unpublished,
    /// Could not use the new definition and was taken out of the stage; `error` says why.
    Failed,
}

/// One line of a cascade report.
///
/// # Examples
///
/// ```
/// use stagegate::control::{ApiReport, ReportResult};
/// use stagegate::model::{ApiId, Stage};
/// let r = ApiReport { api_id: ApiId::generate(), api_name: "getUser".into(), stage: Stage::TEST, result: ReportResult::Republished, error: None };
/// let json = serde_json::to_value(&r).unwrap();
/// assert_eq!(json["result"], "republished");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiReport {
    /// The API.
    pub api_id: ApiId,
    /// Its name.
    pub api_name: String,
    /// The stage.
    pub stage: Stage,
    /// What happened.
    pub result: ReportResult,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ApiReport {
    /// The line for `api` in `stage`.
    pub(crate) fn new(
        api: &ApiDefinition,
        stage: &Stage,
        result: ReportResult,
        error: Option<String>,
    ) -> Self {
        Self {
            api_id: api.id.clone(),
            api_name: api.name.clone(),
            stage: stage.clone(),
            result,
            error,
        }
    }
}
