//! The actions, one file per resource. Each takes the call's decoded parameters, performs one
//! [`ControlPlane`] operation and answers the action's PascalCase fields.

mod apis;
mod apps;
mod authorizations;
mod backend_models;
mod backends;
mod groups;
mod publish;

use serde_json::Value;

use super::error::CloudApiError;
use super::wire::Params;
use crate::control::ControlPlane;
use crate::model::{ApiId, AppId, BackendId, GroupId, ValidationError};

/// One verified call.
pub(crate) struct Call<'a> {
    pub(crate) control: &'a ControlPlane,
    pub(crate) params: &'a Params,
}

type Outcome = Result<Value, CloudApiError>;

/// Every action this endpoint speaks, in the order of `docs/cloudapi.md` (which says, action by
/// action, which fields are honoured, ignored and refused).
///
/// # Examples
///
/// ```
/// assert!(stagegate::cloudapi::ACTIONS.contains(&"CreateBackendModel"));
/// ```
pub const ACTIONS: [&str; 35] = [
    "CreateBackend",
    "ModifyBackend",
    "DeleteBackend",
    "DescribeBackendInfo",
    "DescribeBackendList",
    "CreateBackendModel",
    "ModifyBackendModel",
    "DeleteBackendModel",
    "DescribeApisByBackend",
    "CreateApiGroup",
    "DescribeApiGroups",
    "DeleteApiGroup",
    "CreateApi",
    "ModifyApi",
    "DescribeApi",
    "DescribeApis",
    "DeleteApi",
    "DeployApi",
    "AbolishApi",
    "DescribeDeployedApis",
    "DescribeHistoryApis",
    "SwitchApi",
    "CreateApp",
    "ModifyApp",
    "DeleteApp",
    "DescribeApps",
    "DescribeAppSecurity",
    "ResetAppSecret",
    "SetAppsAuthorities",
    "SetApisAuthorities",
    "RemoveAppsAuthorities",
    "RemoveApisAuthorities",
    "DescribeAuthorizedApis",
    "DescribeAuthorizedApps",
    "DescribeApiGroup",
];

pub(crate) async fn dispatch(action: &str, c: &Call<'_>) -> Outcome {
    match action {
        "CreateBackend" => backends::create(c).await,
        "ModifyBackend" => backends::modify(c).await,
        "DeleteBackend" => backends::delete(c).await,
        "DescribeBackendInfo" => backends::describe(c).await,
        "DescribeBackendList" => backends::list(c).await,
        "CreateBackendModel" => backend_models::create(c).await,
        "ModifyBackendModel" => backend_models::modify(c).await,
        "DeleteBackendModel" => backend_models::delete(c).await,
        "DescribeApisByBackend" => backend_models::apis_by_backend(c).await,
        "CreateApiGroup" => groups::create(c).await,
        "DescribeApiGroups" => groups::list(c).await,
        "DescribeApiGroup" => groups::describe(c).await,
        "DeleteApiGroup" => groups::delete(c).await,
        "CreateApi" => apis::create(c).await,
        "ModifyApi" => apis::modify(c).await,
        "DescribeApi" => apis::describe(c).await,
        "DescribeApis" => apis::list(c).await,
        "DeleteApi" => apis::delete(c).await,
        "DeployApi" => publish::deploy(c).await,
        "AbolishApi" => publish::abolish(c).await,
        "DescribeDeployedApis" => publish::deployed(c).await,
        "DescribeHistoryApis" => publish::history(c).await,
        "SwitchApi" => publish::switch(c).await,
        "CreateApp" => apps::create(c).await,
        "ModifyApp" => apps::modify(c).await,
        "DeleteApp" => apps::delete(c).await,
        "DescribeApps" => apps::list(c).await,
        "DescribeAppSecurity" => apps::security(c).await,
        "ResetAppSecret" => apps::reset_secret(c).await,
        "SetAppsAuthorities" => authorizations::set_apps(c).await,
        "SetApisAuthorities" => authorizations::set_apis(c).await,
        "RemoveAppsAuthorities" => authorizations::remove_apps(c).await,
        "RemoveApisAuthorities" => authorizations::remove_apis(c).await,
        "DescribeAuthorizedApis" => authorizations::authorized_apis(c).await,
        "DescribeAuthorizedApps" => authorizations::authorized_apps(c).await,
        other => Err(CloudApiError::UnsupportedAction(super::wire::short(other))),
    }
}

fn id_error(field: &str, e: &ValidationError) -> CloudApiError {
    CloudApiError::invalid(field, e.to_string())
}

impl Call<'_> {
    pub(crate) fn backend_id(&self, name: &str) -> Result<BackendId, CloudApiError> {
        BackendId::parse(self.params.req(name)?).map_err(|e| id_error(name, &e))
    }
    pub(crate) fn group_id(&self, name: &str) -> Result<GroupId, CloudApiError> {
        GroupId::parse(self.params.req(name)?).map_err(|e| id_error(name, &e))
    }
    pub(crate) fn api_id(&self, name: &str) -> Result<ApiId, CloudApiError> {
        ApiId::parse(self.params.req(name)?).map_err(|e| id_error(name, &e))
    }
    pub(crate) fn app_id(&self, name: &str) -> Result<AppId, CloudApiError> {
        app_id(name, self.params.req(name)?)
    }
}

pub(crate) fn app_id(field: &str, v: &str) -> Result<AppId, CloudApiError> {
    AppId::parse(v).map_err(|e| id_error(field, &e))
}

/// An app id as CloudAPI writes it: an integer when it is one (ids made here are), else text.
pub(crate) fn app_id_json(id: &AppId) -> Value {
    id.as_str()
        .parse::<u64>()
        .map_or_else(|_| Value::String(id.as_str().to_owned()), Value::from)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_action_is_in_the_documented_table() {
        let doc = include_str!("../../../docs/cloudapi.md");
        for a in super::ACTIONS {
            assert!(
                doc.contains(&format!("| `{a}` |")),
                "{a} is not in docs/cloudapi.md"
            );
        }
    }
}
