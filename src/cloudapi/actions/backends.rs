//! Backend services: `CreateBackend`, `ModifyBackend`, `DeleteBackend`, `DescribeBackendInfo`,
//! `DescribeBackendList`.

use serde_json::{Value, json};

use super::backend_models::{model_id, model_json};
use super::{Call, Outcome};
use crate::cloudapi::error::CloudApiError;
use crate::cloudapi::wire::{page, time};
use crate::control::{BackendPatch, NewBackend};
use crate::model::{BackendKind, BackendService};

/// A CloudAPI `BackendType` as a stagegate kind. Function Compute types are refused: their
/// four wire names would not survive a describe (stagegate keeps one function kind), and a
/// script comparing them would break.
pub(super) fn kind(field: &str, v: &str) -> Result<BackendKind, CloudApiError> {
    match v {
        "HTTP" => Ok(BackendKind::Http),
        "VPC" => Ok(BackendKind::Vpc),
        "MOCK" => Ok(BackendKind::Mock),
        "OSS" => Ok(BackendKind::Oss),
        "EVENTBRIDGE" => Ok(BackendKind::EventBridge),
        "FC_EVENT" | "FC_HTTP" | "FC_EVENT_V3" | "FC_HTTP_V3" => Err(CloudApiError::unsupported(
            field,
            "Function Compute backends are managed through the admin API, not CloudAPI",
        )),
        _ => Err(CloudApiError::invalid(
            field,
            "must be one of HTTP, VPC, MOCK, OSS, EVENTBRIDGE",
        )),
    }
}

/// The wire name of a kind.
pub(super) fn kind_name(k: BackendKind) -> &'static str {
    match k {
        BackendKind::Http => "HTTP",
        BackendKind::Vpc => "VPC",
        BackendKind::Mock => "MOCK",
        BackendKind::Oss => "OSS",
        BackendKind::EventBridge => "EVENTBRIDGE",
        BackendKind::FunctionCompute => "FC_EVENT",
        BackendKind::ServiceDiscovery => "SERVICE_DISCOVERY",
        _ => "MIXED",
    }
}

fn summary(b: &BackendService) -> Value {
    json!({
        "BackendId": b.id.as_str(),
        "BackendName": b.name,
        "BackendType": kind_name(b.kind),
        "Description": b.description.clone().unwrap_or_default(),
        "CreatedTime": time(b.created_at),
        "ModifiedTime": time(b.modified_at),
        "Tags": [],
    })
}

pub(super) async fn create(c: &Call<'_>) -> Outcome {
    let p = c.params;
    let name = p.req("BackendName")?;
    let k = kind("BackendType", p.req("BackendType")?)?;
    // cloud-only: service-linked roles and tags
    p.bool("CreateEventBridgeServiceLinkedRole")?;
    p.bool("CreateSlr")?;
    let mut spec = NewBackend::new(name, k);
    if let Some(d) = p.opt("Description") {
        spec = spec.with_description(d);
    }
    let b = c.control.create_backend(spec).await?;
    Ok(json!({"BackendId": b.id.as_str()}))
}

pub(super) async fn modify(c: &Call<'_>) -> Outcome {
    let p = c.params;
    let id = c.backend_id("BackendId")?;
    let name = p.req("BackendName")?;
    let k = kind("BackendType", p.req("BackendType")?)?;
    let current = c.control.backend(&id).await?;
    if current.kind != k {
        return Err(CloudApiError::OperationDenied(format!(
            "the type of backend `{}` is {} and cannot be changed",
            current.name,
            kind_name(current.kind)
        )));
    }
    let patch = BackendPatch {
        name: Some(name.to_owned()),
        description: p.opt("Description").map(str::to_owned),
    };
    c.control.update_backend(&id, patch).await?;
    Ok(json!({}))
}

pub(super) async fn delete(c: &Call<'_>) -> Outcome {
    let id = c.backend_id("BackendId")?;
    c.control.delete_backend(&id).await?;
    Ok(json!({}))
}

pub(super) async fn describe(c: &Call<'_>) -> Outcome {
    let id = c.backend_id("BackendId")?;
    let b = c.control.backend(&id).await?;
    let models: Vec<Value> = b
        .stages
        .iter()
        .map(|(stage, def)| {
            json!({
                "BackendModelId": model_id(&b.id, stage),
                "StageName": stage.as_str(),
                "StageModeId": "",
                "Description": "",
                "GmtCreate": time(b.created_at),
                "GmtModified": time(b.modified_at),
                "BackendConfig": model_json(def),
            })
        })
        .collect();
    let mut info = summary(&b);
    info["BackendModels"] = Value::Array(models);
    Ok(json!({"BackendInfo": info}))
}

pub(super) async fn list(c: &Call<'_>) -> Outcome {
    let p = c.params;
    let name = p.opt("BackendName").filter(|n| !n.is_empty());
    let k = p
        .opt("BackendType")
        .filter(|t| !t.is_empty())
        .map(|t| kind("BackendType", t))
        .transpose()?;
    let all: Vec<BackendService> = c
        .control
        .backends()
        .await
        .into_iter()
        .filter(|b| name.is_none_or(|n| matches_name(n, &b.name)))
        .filter(|b| k.is_none_or(|k| b.kind == k))
        .collect();
    let (items, mut paging) = page(p, all)?;
    paging["BackendInfoList"] = Value::Array(items.iter().map(summary).collect());
    Ok(paging)
}

/// `BackendName` matching: exact, or with `*` as a wildcard (Alibaba's fuzzy match).
fn matches_name(pattern: &str, name: &str) -> bool {
    if !pattern.contains('*') {
        return pattern == name;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = name;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else if let Some(at) = rest.find(part) {
            rest = &rest[at + part.len()..];
        } else {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    #[test]
    fn fuzzy_names_match_with_stars() {
        assert!(super::matches_name("echo*", "echo_backend"));
        assert!(super::matches_name("*back*", "echo_backend"));
        assert!(!super::matches_name("echo", "echo_backend"));
        assert!(!super::matches_name("x*", "echo"));
    }
}
