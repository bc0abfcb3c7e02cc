//! Backend models (a backend's definition in one stage): `CreateBackendModel`,
//! `ModifyBackendModel`, `DeleteBackendModel`, `DescribeApisByBackend`.
//!
//! stagegate keeps at most one definition per (backend, stage), as Alibaba does; the
//! `BackendModelId` is derived from the pair (32 hex characters), so it is stable across
//! restarts and nodes without being stored.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::backends::{kind, kind_name};
use super::{Call, Outcome};
use crate::cloudapi::error::CloudApiError;
use crate::cloudapi::wire::{field, page, str_field};
use crate::model::{BackendId, BackendKind, Stage, StageDefinition};

/// The `BackendModelId` of a backend's definition in a stage.
pub(super) fn model_id(backend: &BackendId, stage: &Stage) -> String {
    let d = Sha256::digest(format!("{}:{}", backend.as_str(), stage.as_str()).as_bytes());
    d.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// Keys of `BackendModelData` stagegate reads, per kind; any other key is refused.
fn known_keys(k: BackendKind) -> &'static [&'static str] {
    match k {
        BackendKind::Http => &[
            "Type",
            "ServiceAddress",
            "HttpTargetHostName",
            "ServiceTimeout",
        ],
        BackendKind::Vpc => &["Type", "VpcConfig", "ServiceTimeout"],
        BackendKind::Mock => &["Type", "MockConfig"],
        BackendKind::Oss => &["Type", "OssConfig"],
        BackendKind::EventBridge => &["Type", "EventBridgeConfig"],
        _ => &["Type"],
    }
}

fn check_keys(obj: &Map<String, Value>, parent: &str, known: &[&str]) -> Result<(), CloudApiError> {
    for k in obj.keys() {
        let canonical = {
            let mut c = k.chars();
            c.next()
                .map(|f| format!("{}{}", f.to_ascii_uppercase(), c.as_str()))
                .unwrap_or_default()
        };
        if !known.contains(&canonical.as_str()) {
            return Err(CloudApiError::unsupported(
                format!("{parent}.{}", crate::cloudapi::wire::short(k)),
                "not supported by this gateway; see docs/cloudapi.md",
            ));
        }
    }
    Ok(())
}

fn object<'v>(v: &'v Value, name: &str) -> Result<&'v Map<String, Value>, CloudApiError> {
    v.as_object()
        .ok_or_else(|| CloudApiError::invalid(name, "must be a JSON object"))
}

fn timeout(obj: &Map<String, Value>, parent: &str) -> Result<Option<u64>, CloudApiError> {
    str_field(obj, parent, "ServiceTimeout")?
        .map(|t| {
            t.parse::<u64>().map_err(|_| {
                CloudApiError::invalid(format!("{parent}.ServiceTimeout"), "must be milliseconds")
            })
        })
        .transpose()
}

/// `BackendModelData` (PascalCase, or camelCase first letters) as a stage definition.
pub(super) fn parse_model(k: BackendKind, data: &Value) -> Result<StageDefinition, CloudApiError> {
    const F: &str = "BackendModelData";
    let obj = object(data, F)?;
    check_keys(obj, F, known_keys(k))?;
    if let Some(t) = str_field(obj, F, "Type")?
        && kind("BackendModelData.Type", &t)? != k
    {
        return Err(CloudApiError::invalid(
            "BackendModelData.Type",
            "must equal the backend's type",
        ));
    }
    let ours = match k {
        BackendKind::Http => json!({
            "url": str_field(obj, F, "ServiceAddress")?
                .ok_or_else(|| CloudApiError::MissingParameter(format!("{F}.ServiceAddress")))?,
            "host_header": str_field(obj, F, "HttpTargetHostName")?,
            "timeout_ms": timeout(obj, F)?,
        }),
        BackendKind::Vpc => {
            let p = "BackendModelData.VpcConfig";
            let v = object(
                field(obj, "VpcConfig").ok_or_else(|| CloudApiError::MissingParameter(p.into()))?,
                p,
            )?;
            check_keys(v, p, &["VpcAccessId", "VpcScheme", "VpcTargetHostName"])?;
            let scheme = str_field(v, p, "VpcScheme")?.unwrap_or_else(|| "http".into());
            if !matches!(scheme.as_str(), "http" | "https" | "HTTP" | "HTTPS") {
                return Err(CloudApiError::invalid(
                    format!("{p}.VpcScheme"),
                    "must be http or https",
                ));
            }
            json!({
                "vpc_access_id": str_field(v, p, "VpcAccessId")?
                    .ok_or_else(|| CloudApiError::MissingParameter(format!("{p}.VpcAccessId")))?,
                "https": scheme.eq_ignore_ascii_case("https"),
                "host_header": str_field(v, p, "VpcTargetHostName")?,
                "timeout_ms": timeout(obj, F)?,
            })
        }
        BackendKind::Mock => {
            let p = "BackendModelData.MockConfig";
            let m = object(
                field(obj, "MockConfig")
                    .ok_or_else(|| CloudApiError::MissingParameter(p.into()))?,
                p,
            )?;
            check_keys(m, p, &["MockResult", "MockStatusCode", "MockHeaders"])?;
            let status = str_field(m, p, "MockStatusCode")?
                .unwrap_or_else(|| "200".into())
                .parse::<u16>()
                .map_err(|_| {
                    CloudApiError::invalid(format!("{p}.MockStatusCode"), "must be an HTTP status")
                })?;
            let mut headers = Map::new();
            if let Some(hs) = field(m, "MockHeaders") {
                for h in hs.as_array().ok_or_else(|| {
                    CloudApiError::invalid(format!("{p}.MockHeaders"), "must be an array")
                })? {
                    let h = object(h, "MockHeaders[]")?;
                    let name = str_field(h, "MockHeaders[]", "HeaderName")?.unwrap_or_default();
                    let value = str_field(h, "MockHeaders[]", "HeaderValue")?.unwrap_or_default();
                    headers.insert(name, Value::String(value));
                }
            }
            json!({"status": status, "headers": headers, "body": str_field(m, p, "MockResult")?.unwrap_or_default()})
        }
        BackendKind::Oss => {
            let p = "BackendModelData.OssConfig";
            let o = object(
                field(obj, "OssConfig").ok_or_else(|| CloudApiError::MissingParameter(p.into()))?,
                p,
            )?;
            check_keys(o, p, &["OssRegionId", "BucketName"])?;
            json!({
                "bucket": str_field(o, p, "BucketName")?
                    .ok_or_else(|| CloudApiError::MissingParameter(format!("{p}.BucketName")))?,
                "region": str_field(o, p, "OssRegionId")?,
                "permissions": {"read": true, "write": false},
            })
        }
        BackendKind::EventBridge => {
            let p = "BackendModelData.EventBridgeConfig";
            let e = object(
                field(obj, "EventBridgeConfig")
                    .ok_or_else(|| CloudApiError::MissingParameter(p.into()))?,
                p,
            )?;
            check_keys(
                e,
                p,
                &["EventBridgeRegionId", "EventBus", "EventSource", "RoleArn"],
            )?;
            json!({
                "bus": str_field(e, p, "EventBus")?.unwrap_or_default(),
                "source": str_field(e, p, "EventSource")?.unwrap_or_default(),
                "region": str_field(e, p, "EventBridgeRegionId")?,
            })
        }
        _ => {
            return Err(CloudApiError::unsupported(
                F,
                "this backend type is managed through the admin API",
            ));
        }
    };
    let mut ours = ours;
    if let Value::Object(m) = &mut ours {
        m.retain(|_, v| !v.is_null());
    }
    StageDefinition::from_json(k, ours).map_err(|e| match e {
        crate::model::ValidationError::InvalidField { field, reason } => {
            CloudApiError::invalid(format!("{F} ({field})"), reason)
        }
        other => CloudApiError::invalid(F, other.to_string()),
    })
}

/// A stage definition as `BackendConfig` (PascalCase, Alibaba's keys).
pub(super) fn model_json(def: &StageDefinition) -> Value {
    let mut v = match def {
        StageDefinition::Http(h) => json!({
            "ServiceAddress": h.url,
            "HttpTargetHostName": h.host_header,
            "ServiceTimeout": h.timeout_ms,
        }),
        StageDefinition::Vpc(v) => json!({
            "VpcConfig": {
                "VpcAccessId": v.vpc_access_id.as_str(),
                "VpcScheme": if v.https { "https" } else { "http" },
                "VpcTargetHostName": v.host_header,
            },
            "ServiceTimeout": v.timeout_ms,
        }),
        StageDefinition::Mock(m) => json!({
            "MockConfig": {
                "MockResult": m.body,
                "MockStatusCode": m.status.to_string(),
                "MockHeaders": m.headers.iter().map(|(k, v)| json!({"HeaderName": k, "HeaderValue": v})).collect::<Vec<_>>(),
            }
        }),
        StageDefinition::Oss(o) => json!({
            "OssConfig": {"BucketName": o.bucket, "OssRegionId": o.region}
        }),
        StageDefinition::EventBridge(e) => json!({
            "EventBridgeConfig": {"EventBus": e.bus, "EventSource": e.source, "EventBridgeRegionId": e.region}
        }),
        _ => json!({}),
    };
    if let Value::Object(m) = &mut v {
        m.retain(|_, x| !x.is_null());
        m.insert("Type".into(), Value::String(kind_name(def.kind()).into()));
    }
    v
}

/// The stage whose model id is `model_id` on `backend`.
async fn stage_of(c: &Call<'_>, backend: &BackendId, id: &str) -> Result<Stage, CloudApiError> {
    let b = c.control.backend(backend).await?;
    b.stages
        .keys()
        .find(|s| model_id(backend, s) == id)
        .cloned()
        .ok_or_else(|| CloudApiError::NotFound {
            code: "NotFoundBackendModel",
            message: format!(
                "backend model `{}` of backend `{}` not found",
                crate::cloudapi::wire::short(id),
                b.name
            ),
        })
}

fn report_json(report: &[crate::control::ApiReport]) -> Value {
    Value::Array(
        report
            .iter()
            .map(|r| {
                json!({
                    "ApiUid": r.api_id.as_str(), "ApiName": r.api_name, "StageName": r.stage.as_str(),
                    "UpdateStatus": "OVER",
                    "Result": serde_json::to_value(&r.result).unwrap_or(Value::Null),
                })
            })
            .collect(),
    )
}

pub(super) async fn create(c: &Call<'_>) -> Outcome {
    let p = c.params;
    let id = c.backend_id("BackendId")?;
    let stage = p.req_stage("StageName")?;
    let k = kind("BackendType", p.req("BackendType")?)?;
    let b = c.control.backend(&id).await?;
    if b.kind != k {
        return Err(CloudApiError::invalid(
            "BackendType",
            "must equal the backend's type",
        ));
    }
    if b.stages.contains_key(&stage) {
        return Err(CloudApiError::Repeated {
            code: "RepeatedBackendModel",
            message: format!("backend `{}` already has a model for stage {stage}", b.name),
        });
    }
    let data = p
        .json("BackendModelData")?
        .ok_or_else(|| CloudApiError::MissingParameter("BackendModelData".into()))?;
    let def = parse_model(k, &data)?;
    c.control
        .set_stage_definition(&id, stage.clone(), def)
        .await?;
    Ok(json!({"BackendModelId": model_id(&id, &stage)}))
}

pub(super) async fn modify(c: &Call<'_>) -> Outcome {
    let p = c.params;
    let id = c.backend_id("BackendId")?;
    let model = p.req("BackendModelId")?;
    let stage = stage_of(c, &id, model).await?;
    if let Some(s) = p.stage("StageName")?
        && s != stage
    {
        return Err(CloudApiError::invalid(
            "StageName",
            format!("the model is stage {stage}'s; a model cannot move to another stage"),
        ));
    }
    let b = c.control.backend(&id).await?;
    if let Some(t) = p.opt("BackendType").filter(|t| !t.is_empty())
        && kind("BackendType", t)? != b.kind
    {
        return Err(CloudApiError::invalid(
            "BackendType",
            "must equal the backend's type",
        ));
    }
    let Some(data) = p.json("BackendModelData")? else {
        return Ok(json!({"OperationId": model}));
    };
    let def = parse_model(b.kind, &data)?;
    let change = c.control.set_stage_definition(&id, stage, def).await?;
    Ok(json!({"OperationId": model, "ApiUpdateBackendResults": report_json(&change.report)}))
}

pub(super) async fn delete(c: &Call<'_>) -> Outcome {
    let p = c.params;
    let id = c.backend_id("BackendId")?;
    let model = p.req("BackendModelId")?;
    let stage = stage_of(c, &id, model).await?;
    if let Some(s) = p.stage("StageName")?
        && s != stage
    {
        return Err(CloudApiError::invalid(
            "StageName",
            format!("the model is stage {stage}'s"),
        ));
    }
    let report = c.control.delete_stage_definition(&id, &stage).await?;
    Ok(json!({"OperationId": model, "ApiUpdateBackendResults": report_json(&report)}))
}

pub(super) async fn apis_by_backend(c: &Call<'_>) -> Outcome {
    let p = c.params;
    let id = c.backend_id("BackendId")?;
    let stage = p.stage("StageName")?;
    let apis = c.control.apis_using_backend(&id, stage.as_ref()).await?;
    let groups = c.control.groups().await;
    let (items, mut paging) = page(p, apis)?;
    let list: Vec<Value> = items
        .iter()
        .map(|a| {
            let group = groups.iter().find(|g| g.id == a.group_id);
            json!({
                "ApiId": a.id.as_str(), "ApiName": a.name, "GroupId": a.group_id.as_str(),
                "GroupName": group.map(|g| g.name.clone()).unwrap_or_default(),
                "Method": a.request.method, "Path": a.request.path.as_str(),
                "Description": a.description.clone().unwrap_or_default(),
                "StageName": stage.as_ref().map(|s| s.as_str().to_owned()).unwrap_or_default(),
            })
        })
        .collect();
    paging["ApiInfoList"] = json!({"ApiInfo": list});
    Ok(paging)
}
