//! Authorizations: `SetAppsAuthorities`, `SetApisAuthorities`, `RemoveAppsAuthorities`,
//! `RemoveApisAuthorities`, `DescribeAuthorizedApis`, `DescribeAuthorizedApps`.
//!
//! A call naming several apps or APIs checks every id first and only then grants or revokes,
//! so an unknown id changes nothing.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::{Call, Outcome, app_id, app_id_json};
use crate::cloudapi::error::CloudApiError;
use crate::cloudapi::wire::{page, time};
use crate::model::{ApiId, AppId, Authorization, Stage};

/// `AuthValidTime`: ISO-8601 (`2030-10-05T16:00:00Z`) or the RFC 1123 form the docs show
/// (`Fri, 05 Oct 2030 16:00:00 GMT`); empty means never.
fn valid_until(c: &Call<'_>) -> Result<Option<Timestamp>, CloudApiError> {
    let Some(v) = c
        .params
        .opt("AuthValidTime")
        .filter(|v| !v.trim().is_empty())
    else {
        return Ok(None);
    };
    if let Ok(t) = v.parse::<Timestamp>() {
        return Ok(Some(t));
    }
    jiff::fmt::rfc2822::parse(v)
        .map(|z| Some(z.timestamp()))
        .map_err(|_| {
            CloudApiError::invalid(
                "AuthValidTime",
                "must be like 2030-10-05T16:00:00Z or Fri, 05 Oct 2030 16:00:00 GMT",
            )
        })
}

fn stage(c: &Call<'_>) -> Result<Stage, CloudApiError> {
    Ok(c.params.stage("StageName")?.unwrap_or(Stage::RELEASE))
}

async fn check_group(c: &Call<'_>, api: &ApiId) -> Result<(), CloudApiError> {
    let a = c.control.api(api).await?;
    if let Some(g) = c.params.opt("GroupId").filter(|g| !g.is_empty())
        && a.group_id.as_str() != g
    {
        return Err(CloudApiError::NotFound {
            code: "NotFoundApi",
            message: format!("api `{api}` not found in that group"),
        });
    }
    Ok(())
}

fn api_ids(c: &Call<'_>) -> Result<Vec<ApiId>, CloudApiError> {
    c.params
        .list("ApiIds", 100)?
        .into_iter()
        .map(|s| ApiId::parse(s).map_err(|e| CloudApiError::invalid("ApiIds", e.to_string())))
        .collect()
}

fn app_ids(c: &Call<'_>) -> Result<Vec<AppId>, CloudApiError> {
    c.params
        .list("AppIds", 100)?
        .into_iter()
        .map(|s| app_id("AppIds", s))
        .collect()
}

/// One API to many apps.
pub(super) async fn set_apps(c: &Call<'_>) -> Outcome {
    let api = c.api_id("ApiId")?;
    let stage = stage(c)?;
    let until = valid_until(c)?;
    let apps = app_ids(c)?;
    check_group(c, &api).await?;
    for a in &apps {
        c.control.app(a).await?;
    }
    for a in &apps {
        c.control.authorize(a, &api, stage.clone(), until).await?;
    }
    Ok(json!({}))
}

/// One app to many APIs.
pub(super) async fn set_apis(c: &Call<'_>) -> Outcome {
    let app = c.app_id("AppId")?;
    let stage = stage(c)?;
    let until = valid_until(c)?;
    let apis = api_ids(c)?;
    c.control.app(&app).await?;
    for a in &apis {
        check_group(c, a).await?;
    }
    for a in &apis {
        c.control.authorize(&app, a, stage.clone(), until).await?;
    }
    Ok(json!({}))
}

/// Revokes, after checking that every grant exists.
async fn revoke_all(c: &Call<'_>, pairs: &[(AppId, ApiId)], stage: &Stage) -> Outcome {
    let existing = c.control.authorizations(None, None).await;
    for (app, api) in pairs {
        if !existing
            .iter()
            .any(|g| &g.app_id == app && &g.api_id == api && &g.stage == stage)
        {
            return Err(CloudApiError::NotFound {
                code: "NotFoundAuthorization",
                message: format!("app {app} holds no grant for api {api} in stage {stage}"),
            });
        }
    }
    for (app, api) in pairs {
        c.control.revoke(app, api, stage).await?;
    }
    Ok(json!({}))
}

pub(super) async fn remove_apps(c: &Call<'_>) -> Outcome {
    let api = c.api_id("ApiId")?;
    let stage = stage(c)?;
    let apps = app_ids(c)?;
    check_group(c, &api).await?;
    let pairs: Vec<_> = apps.into_iter().map(|a| (a, api.clone())).collect();
    revoke_all(c, &pairs, &stage).await
}

pub(super) async fn remove_apis(c: &Call<'_>) -> Outcome {
    let app = c.app_id("AppId")?;
    let stage = stage(c)?;
    let pairs: Vec<_> = api_ids(c)?.into_iter().map(|a| (app.clone(), a)).collect();
    revoke_all(c, &pairs, &stage).await
}

async fn item(c: &Call<'_>, g: &Authorization) -> Value {
    let api = c.control.api(&g.api_id).await.ok();
    let app = c.control.app(&g.app_id).await.ok();
    let group_name = match &api {
        Some(a) => c
            .control
            .group(&a.group_id)
            .await
            .map(|g| g.name)
            .unwrap_or_default(),
        None => String::new(),
    };
    json!({
        "ApiId": g.api_id.as_str(),
        "ApiName": api.as_ref().map(|a| a.name.clone()).unwrap_or_default(),
        "GroupId": api.as_ref().map(|a| a.group_id.as_str().to_owned()).unwrap_or_default(),
        "GroupName": group_name,
        "AppId": app_id_json(&g.app_id),
        "AppName": app.map(|a| a.name).unwrap_or_default(),
        "StageName": g.stage.as_str(),
        "RegionId": "local",
        "Operator": "PROVIDER",
        "AuthorizationSource": "API",
        "AuthorizedTime": time(g.created_at),
        "AuthVaildTime": g.expires_at.map(time).unwrap_or_default(),
        "Description": "",
    })
}

pub(super) async fn authorized_apis(c: &Call<'_>) -> Outcome {
    let app = c.app_id("AppId")?;
    c.control.app(&app).await?;
    let grants = c.control.authorizations(None, Some(&app)).await;
    let (grants, mut paging) = page(c.params, grants)?;
    let mut items = Vec::with_capacity(grants.len());
    for g in &grants {
        items.push(item(c, g).await);
    }
    paging["AuthorizedApis"] = json!({"AuthorizedApi": items});
    Ok(paging)
}

pub(super) async fn authorized_apps(c: &Call<'_>) -> Outcome {
    let api = c.api_id("ApiId")?;
    check_group(c, &api).await?;
    let stage = c.params.stage("StageName")?;
    let grants: Vec<Authorization> = c
        .control
        .authorizations(Some(&api), None)
        .await
        .into_iter()
        .filter(|g| stage.as_ref().is_none_or(|s| *s == g.stage))
        .collect();
    let (grants, mut paging) = page(c.params, grants)?;
    let mut items = Vec::with_capacity(grants.len());
    for g in &grants {
        items.push(item(c, g).await);
    }
    paging["AuthorizedApps"] = json!({"AuthorizedApp": items});
    Ok(paging)
}
