//! API groups: `CreateApiGroup`, `DescribeApiGroups`, `DescribeApiGroup`, `DeleteApiGroup`.

use serde_json::{Value, json};

use super::{Call, Outcome};
use crate::cloudapi::wire::{page, time};
use crate::control::NewGroup;
use crate::model::Group;

fn attributes(g: &Group) -> Value {
    json!({
        "GroupId": g.id.as_str(),
        "GroupName": g.name,
        "Description": g.description.clone().unwrap_or_default(),
        "BasePath": g.base_path.clone().unwrap_or_else(|| "/".into()),
        "SubDomain": g.domains.first().cloned().unwrap_or_default(),
        "CustomDomains": g.domains,
        "CreatedTime": time(g.created_at),
        "ModifiedTime": time(g.created_at),
        "RegionId": "local",
        "InstanceId": "stagegate",
        "InstanceType": "VPC_DEDICATED",
    })
}

pub(super) async fn create(c: &Call<'_>) -> Outcome {
    let p = c.params;
    let spec = NewGroup {
        name: p.req("GroupName")?.to_owned(),
        description: p.opt("Description").map(str::to_owned),
        base_path: p
            .opt("BasePath")
            .filter(|b| !b.is_empty() && *b != "/")
            .map(str::to_owned),
        domains: Vec::new(),
        pass_appcode_to_backend: false,
    };
    let g = c.control.create_group(spec).await?;
    let mut out = attributes(&g);
    out["TagStatus"] = Value::Bool(false);
    Ok(out)
}

pub(super) async fn describe(c: &Call<'_>) -> Outcome {
    let id = c.group_id("GroupId")?;
    Ok(attributes(&c.control.group(&id).await?))
}

pub(super) async fn list(c: &Call<'_>) -> Outcome {
    let p = c.params;
    let name = p.opt("GroupName").filter(|n| !n.is_empty());
    let id = p.opt("GroupId").filter(|n| !n.is_empty());
    let groups: Vec<Group> = c
        .control
        .groups()
        .await
        .into_iter()
        .filter(|g| name.is_none_or(|n| g.name.contains(n)))
        .filter(|g| id.is_none_or(|i| g.id.as_str() == i))
        .collect();
    let (items, mut paging) = page(p, groups)?;
    paging["ApiGroupAttributes"] =
        json!({"ApiGroupAttribute": items.iter().map(attributes).collect::<Vec<_>>()});
    Ok(paging)
}

pub(super) async fn delete(c: &Call<'_>) -> Outcome {
    let id = c.group_id("GroupId")?;
    c.control.delete_group(&id).await?;
    Ok(json!({}))
}
