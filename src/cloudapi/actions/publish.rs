//! Publishing: `DeployApi`, `AbolishApi`, `DescribeDeployedApis`, `DescribeHistoryApis`,
//! `SwitchApi`.

use serde_json::json;

use super::{Call, Outcome};
use crate::cloudapi::error::CloudApiError;
use crate::cloudapi::wire::{page, short, time};
use crate::model::{ApiDefinition, GroupId, Stage};

/// The API named by `ApiId`, checked to be in `GroupId` when that is given.
async fn api_in_group(c: &Call<'_>) -> Result<ApiDefinition, CloudApiError> {
    let id = c.api_id("ApiId")?;
    let api = c.control.api(&id).await?;
    if let Some(g) = c.params.opt("GroupId").filter(|g| !g.is_empty())
        && api.group_id.as_str() != g
    {
        return Err(CloudApiError::NotFound {
            code: "NotFoundApi",
            message: format!("api `{id}` not found in group `{}`", short(g)),
        });
    }
    Ok(api)
}

pub(super) async fn deploy(c: &Call<'_>) -> Outcome {
    let api = api_in_group(c).await?;
    let stage = c.params.req_stage("StageName")?;
    let description = c.params.req("Description")?.to_owned();
    c.control.publish(&api.id, stage, Some(description)).await?;
    Ok(json!({}))
}

pub(super) async fn abolish(c: &Call<'_>) -> Outcome {
    let api = api_in_group(c).await?;
    let stage = c.params.req_stage("StageName")?;
    c.control.unpublish(&api.id, &stage).await?;
    Ok(json!({}))
}

pub(super) async fn switch(c: &Call<'_>) -> Outcome {
    let api = api_in_group(c).await?;
    let stage = c.params.req_stage("StageName")?;
    let version = c.params.req("HistoryVersion")?;
    c.params.req("Description")?;
    c.control.rollback(&api.id, &stage, version).await?;
    Ok(json!({}))
}

struct Filter {
    group: Option<GroupId>,
    stage: Option<Stage>,
    api: Option<String>,
    name: Option<String>,
}

fn filter(c: &Call<'_>) -> Result<Filter, CloudApiError> {
    let p = c.params;
    Ok(Filter {
        group: p
            .opt("GroupId")
            .filter(|g| !g.is_empty())
            .map(|g| {
                GroupId::parse(g).map_err(|e| CloudApiError::invalid("GroupId", e.to_string()))
            })
            .transpose()?,
        stage: p.stage("StageName")?,
        api: p.opt("ApiId").filter(|s| !s.is_empty()).map(str::to_owned),
        name: p
            .opt("ApiName")
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
    })
}

async fn matching_apis(c: &Call<'_>, f: &Filter) -> Vec<ApiDefinition> {
    c.control
        .apis(f.group.as_ref())
        .await
        .into_iter()
        .filter(|a| f.api.as_deref().is_none_or(|i| a.id.as_str() == i))
        .filter(|a| f.name.as_deref().is_none_or(|n| a.name.contains(n)))
        .collect()
}

fn stages(f: &Filter) -> Vec<Stage> {
    f.stage
        .clone()
        .map_or_else(|| Stage::BUILT_IN.to_vec(), |s| vec![s])
}

pub(super) async fn deployed(c: &Call<'_>) -> Outcome {
    let f = filter(c)?;
    let groups = c.control.groups().await;
    let mut items = Vec::new();
    for api in matching_apis(c, &f).await {
        for stage in stages(&f) {
            if let Some(d) = c.control.published(&api.id, &stage).await {
                let s = &d.snapshot;
                items.push(json!({
                    "RegionId": "local", "GroupId": s.group_id.as_str(),
                    "GroupName": groups.iter().find(|g| g.id == s.group_id).map(|g| g.name.clone()).unwrap_or_default(),
                    "StageName": stage.as_str(), "ApiId": api.id.as_str(), "ApiName": s.name,
                    "Description": s.description.clone().unwrap_or_default(), "Visibility": "PRIVATE",
                    "ApiMethod": s.request.method, "ApiPath": s.request.path.as_str(),
                    "DeployedTime": time(d.deployed_at),
                }));
            }
        }
    }
    let (items, mut paging) = page(c.params, items)?;
    paging["DeployedApis"] = json!({"DeployedApiItem": items});
    Ok(paging)
}

pub(super) async fn history(c: &Call<'_>) -> Outcome {
    let f = filter(c)?;
    let groups = c.control.groups().await;
    let mut items = Vec::new();
    for api in matching_apis(c, &f).await {
        let group_name = groups
            .iter()
            .find(|g| g.id == api.group_id)
            .map(|g| g.name.clone())
            .unwrap_or_default();
        let mut deployments = c.control.deployments(&api.id).await?;
        // newest first, as the console lists them
        deployments.reverse();
        for d in deployments
            .into_iter()
            .filter(|d| f.stage.as_ref().is_none_or(|s| *s == d.stage))
        {
            items.push(json!({
                "RegionId": "local", "GroupId": api.group_id.as_str(), "GroupName": group_name,
                "StageName": d.stage.as_str(), "ApiId": api.id.as_str(), "ApiName": api.name,
                "Description": d.description.unwrap_or_default(), "HistoryVersion": d.version,
                "Status": if d.live { "ONLINE" } else { "OFFLINE" },
                "DeployedTime": time(d.deployed_at),
            }));
        }
    }
    let (items, mut paging) = page(c.params, items)?;
    paging["ApiHisItems"] = json!({"ApiHisItem": items});
    Ok(paging)
}
