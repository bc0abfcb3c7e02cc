//! APIs: `CreateApi`, `ModifyApi`, `DescribeApi`, `DescribeApis`, `DeleteApi`.
//!
//! Alibaba's JSON parameters are translated key by key into stagegate's [`ApiDefinition`];
//! a key that would change behaviour and that stagegate cannot honour is refused, never
//! dropped. The table is in `docs/cloudapi.md`.

use serde_json::{Map, Value, json};

use super::{Call, Outcome};
use crate::cloudapi::error::CloudApiError;
use crate::cloudapi::wire::{Params, field, page, parse_bool, short, str_field};
use crate::model::{ApiDefinition, ApiId, Stage};

fn object<'v>(v: &'v Value, name: &str) -> Result<&'v Map<String, Value>, CloudApiError> {
    v.as_object()
        .ok_or_else(|| CloudApiError::invalid(name, "must be a JSON object"))
}

fn array<'v>(v: &'v Value, name: &str) -> Result<&'v Vec<Value>, CloudApiError> {
    v.as_array()
        .ok_or_else(|| CloudApiError::invalid(name, "must be a JSON array"))
}

/// Refuses keys outside `honoured` and `ignored` (compared with an upper-case first letter).
fn check_keys(
    obj: &Map<String, Value>,
    parent: &str,
    honoured: &[&str],
    ignored: &[&str],
) -> Result<(), CloudApiError> {
    for k in obj.keys() {
        let mut c = k.chars();
        let canonical = c
            .next()
            .map(|f| format!("{}{}", f.to_ascii_uppercase(), c.as_str()))
            .unwrap_or_default();
        if !honoured.contains(&canonical.as_str()) && !ignored.contains(&canonical.as_str()) {
            return Err(CloudApiError::unsupported(
                format!("{parent}.{}", short(k)),
                "not supported by this gateway; see docs/cloudapi.md",
            ));
        }
    }
    Ok(())
}

fn upper(s: Option<String>) -> Option<String> {
    s.map(|v| v.to_ascii_uppercase())
}

fn location(v: Option<String>, field: &str) -> Result<Option<&'static str>, CloudApiError> {
    match upper(v).as_deref() {
        None | Some("") => Ok(None),
        Some("HEAD" | "HEADER") => Ok(Some("HEAD")),
        Some("QUERY") => Ok(Some("QUERY")),
        Some("PATH") => Ok(Some("PATH")),
        Some("BODY" | "FORM") => Ok(Some("BODY")),
        Some(_) => Err(CloudApiError::invalid(
            field,
            "must be HEAD, QUERY, PATH or BODY",
        )),
    }
}

fn number(v: Option<String>, field: &str) -> Result<Option<f64>, CloudApiError> {
    v.filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<f64>()
                .map_err(|_| CloudApiError::invalid(field, "must be a number"))
        })
        .transpose()
}

/// `RequestConfig` → stagegate's request object.
fn request_config(v: &Value) -> Result<Value, CloudApiError> {
    const F: &str = "RequestConfig";
    let o = object(v, F)?;
    check_keys(
        o,
        F,
        &[
            "RequestProtocol",
            "RequestHttpMethod",
            "RequestPath",
            "RequestMode",
            "BodyFormat",
            "EscapePathParam",
        ],
        &["PostBodyDescription", "BodyModel"],
    )?;
    let mut protocols = Vec::new();
    for p in str_field(o, F, "RequestProtocol")?
        .unwrap_or_else(|| "HTTP,HTTPS".into())
        .split(',')
        .map(str::trim)
    {
        match p.to_ascii_uppercase().as_str() {
            "HTTP" => protocols.push("HTTP"),
            "HTTPS" => protocols.push("HTTPS"),
            _ => {
                return Err(CloudApiError::unsupported(
                    "RequestConfig.RequestProtocol",
                    "only HTTP and HTTPS (no WebSocket)",
                ));
            }
        }
    }
    if str_field(o, F, "EscapePathParam")?.is_some_and(|e| e.eq_ignore_ascii_case("true")) {
        return Err(CloudApiError::unsupported(
            "RequestConfig.EscapePathParam",
            "brackets in a path are always parameters here",
        ));
    }
    let method = upper(str_field(o, F, "RequestHttpMethod")?)
        .ok_or_else(|| CloudApiError::MissingParameter("RequestConfig.RequestHttpMethod".into()))?;
    let method = if method == "HEADER" {
        "HEAD".to_owned()
    } else {
        method
    };
    let mode = upper(str_field(o, F, "RequestMode")?).unwrap_or_else(|| "MAPPING".into());
    if !matches!(
        mode.as_str(),
        "MAPPING" | "PASSTHROUGH" | "MAPPING_PASSTHROUGH"
    ) {
        return Err(CloudApiError::invalid(
            "RequestConfig.RequestMode",
            "must be MAPPING, PASSTHROUGH or MAPPING_PASSTHROUGH",
        ));
    }
    let body_format = upper(str_field(o, F, "BodyFormat")?).filter(|b| !b.is_empty());
    if body_format
        .as_deref()
        .is_some_and(|b| b != "FORM" && b != "STREAM")
    {
        return Err(CloudApiError::invalid(
            "RequestConfig.BodyFormat",
            "must be FORM or STREAM",
        ));
    }
    Ok(json!({
        "protocols": protocols,
        "method": method,
        "path": str_field(o, F, "RequestPath")?
            .ok_or_else(|| CloudApiError::MissingParameter("RequestConfig.RequestPath".into()))?,
        "mode": mode,
        "body_format": body_format,
    }))
}

/// `ServiceConfig` + the backend id → stagegate's backend binding.
fn service_config(v: Option<&Value>, backend_id: &str) -> Result<Value, CloudApiError> {
    const F: &str = "ServiceConfig";
    let mut b = json!({"backend_id": backend_id});
    let Some(v) = v else { return Ok(b) };
    let o = object(v, F)?;
    check_keys(
        o,
        F,
        &[
            "ServicePath",
            "ServiceHttpMethod",
            "ServiceTimeout",
            "ContentTypeCatagory",
            "ContentTypeCategory",
            "ContentTypeValue",
            "OssConfig",
            "Mock",
            "ServiceVpcEnable",
        ],
        &["ServiceProtocol", "AoneAppName"],
    )?;
    // the address, VPC, function and mock settings of an API come from its backend service
    for (k, off) in [("Mock", "FALSE"), ("ServiceVpcEnable", "FALSE")] {
        if let Some(val) = str_field(o, F, k)?
            && !val.eq_ignore_ascii_case(off)
        {
            return Err(CloudApiError::unsupported(
                format!("{F}.{k}"),
                "use a backend service of that type (BackendEnable=true, BackendId)",
            ));
        }
    }
    if let Some(p) = str_field(o, F, "ServicePath")?.filter(|p| !p.is_empty()) {
        b["path"] = Value::String(p);
    }
    if let Some(m) = upper(str_field(o, F, "ServiceHttpMethod")?).filter(|m| !m.is_empty()) {
        b["method"] = Value::String(if m == "HEADER" { "HEAD".into() } else { m });
    }
    if let Some(t) = str_field(o, F, "ServiceTimeout")? {
        let ms: u32 = t.parse().map_err(|_| {
            CloudApiError::invalid("ServiceConfig.ServiceTimeout", "must be milliseconds")
        })?;
        b["timeout_ms"] = Value::from(ms);
    }
    let ct = match str_field(o, F, "ContentTypeCatagory")? {
        Some(c) => Some(c),
        None => str_field(o, F, "ContentTypeCategory")?,
    };
    if let Some(ct) = upper(ct).filter(|c| !c.is_empty()) {
        if !matches!(ct.as_str(), "DEFAULT" | "CUSTOM" | "CLIENT") {
            return Err(CloudApiError::invalid(
                "ServiceConfig.ContentTypeCatagory",
                "must be DEFAULT, CUSTOM or CLIENT",
            ));
        }
        b["content_type"] = Value::String(ct);
    }
    if let Some(v) = str_field(o, F, "ContentTypeValue")?.filter(|v| !v.is_empty()) {
        b["content_type_value"] = Value::String(v);
    }
    if let Some(oss) = field(o, "OssConfig") {
        let p = "ServiceConfig.OssConfig";
        let oo = object(oss, p)?;
        check_keys(oo, p, &["Key", "Action"], &["OssRegionId", "BucketName"])?;
        b["oss"] = json!({
            "action": str_field(oo, p, "Action")?.unwrap_or_else(|| "GetObject".into()),
            "key": str_field(oo, p, "Key")?.ok_or_else(|| CloudApiError::MissingParameter(format!("{p}.Key")))?,
        });
    }
    Ok(b)
}

/// The API definition a CreateApi/ModifyApi call describes, in stagegate's JSON shape.
fn definition(p: &Params, id: &ApiId, group_id: &str) -> Result<ApiDefinition, CloudApiError> {
    // refused: behaviour stagegate cannot honour
    p.refuse_unless(
        "AuthType",
        &["APP", "ANONYMOUS"],
        "only APP and ANONYMOUS (no OpenID Connect)",
    )?;
    p.refuse_unless(
        "DisableInternet",
        &["false"],
        "stagegate has no separate internet and VPC entry",
    )?;
    p.refuse_unless(
        "WebSocketApiType",
        &["COMMON"],
        "WebSocket APIs are not supported",
    )?;
    if p.opt("OpenIdConnectConfig")
        .is_some_and(|v| !v.trim().is_empty())
    {
        return Err(CloudApiError::unsupported(
            "OpenIdConnectConfig",
            "OpenID Connect is not supported",
        ));
    }
    if p.bool("BackendEnable")? != Some(true) {
        return Err(CloudApiError::unsupported(
            "BackendEnable",
            "every API here uses a backend service: set BackendEnable=true and BackendId",
        ));
    }
    let backend_id = p.req("BackendId")?;
    let auth = p
        .opt("AuthType")
        .filter(|a| !a.is_empty())
        .unwrap_or("APP")
        .to_ascii_uppercase();
    let appcode = match p
        .opt("AppCodeAuthType")
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        None | Some("" | "DEFAULT" | "DISABLE") => "DISABLE",
        Some("HEADER") => "HEADER",
        Some("HEADER_QUERY") => "HEADER_QUERY",
        Some(_) => {
            return Err(CloudApiError::invalid(
                "AppCodeAuthType",
                "must be DEFAULT, DISABLE, HEADER or HEADER_QUERY",
            ));
        }
    };
    let mut methods = Vec::new();
    for m in p
        .opt("AllowSignatureMethod")
        .filter(|m| !m.is_empty())
        .unwrap_or("HmacSHA256")
        .split(',')
        .map(str::trim)
    {
        match m {
            "HmacSHA256" | "HmacSHA1" => methods.push(m),
            _ => {
                return Err(CloudApiError::invalid(
                    "AllowSignatureMethod",
                    "must be HmacSHA256, HmacSHA1 or both, comma-separated",
                ));
            }
        }
    }
    let request = request_config(
        &p.json("RequestConfig")?
            .ok_or_else(|| CloudApiError::MissingParameter("RequestConfig".into()))?,
    )?;
    let backend = service_config(p.json("ServiceConfig")?.as_ref(), backend_id)?;
    let (parameters, constants, systems) = parameters(p)?;
    let mut response = json!({});
    if let Some(t) = p.opt("ResultType").filter(|t| !t.is_empty()) {
        let ct = match t.to_ascii_uppercase().as_str() {
            "JSON" => "application/json",
            "TEXT" => "text/plain",
            "BINARY" => "application/octet-stream",
            "XML" => "application/xml",
            "HTML" => "text/html",
            "PASSTHROUGH" => "",
            _ => {
                return Err(CloudApiError::invalid(
                    "ResultType",
                    "must be JSON, TEXT, BINARY, XML, HTML or PASSTHROUGH",
                ));
            }
        };
        if !ct.is_empty() {
            response["content_type"] = Value::String(ct.into());
        }
    }
    if let Some(s) = p.opt("ResultSample") {
        response["example"] = Value::String(s.into());
    }
    if let Some(s) = p.opt("FailResultSample") {
        response["error_example"] = Value::String(s.into());
    }
    if let Some(codes) = p.json("ErrorCodeSamples")? {
        let mut out = Vec::new();
        for e in array(&codes, "ErrorCodeSamples")? {
            let e = object(e, "ErrorCodeSamples[]")?;
            out.push(json!({
                "code": str_field(e, "ErrorCodeSamples", "Code")?.unwrap_or_default(),
                "message": str_field(e, "ErrorCodeSamples", "Message")?.unwrap_or_default(),
                "description": str_field(e, "ErrorCodeSamples", "Description")?,
            }));
        }
        response["error_codes"] = Value::Array(out);
    }
    let doc = json!({
        "id": id.as_str(),
        "group_id": group_id,
        "name": p.req("ApiName")?,
        "description": p.opt("Description").filter(|d| !d.is_empty()),
        "auth": auth,
        "appcode_auth": appcode,
        "signature_methods": methods,
        "force_nonce_check": p.bool("ForceNonceCheck")?.unwrap_or(false),
        "request": request,
        "parameters": parameters,
        "constant_parameters": constants,
        "system_parameters": systems,
        "backend": backend,
        "response": response,
    });
    let api: ApiDefinition = serde_json::from_value(strip_nulls(doc))
        .map_err(|e| CloudApiError::invalid("Parameter", e.to_string()))?;
    api.validate().map_err(|e| match e {
        crate::model::ValidationError::InvalidField { field, reason } => {
            CloudApiError::invalid(field, reason)
        }
        other => CloudApiError::invalid("ApiName", other.to_string()),
    })?;
    Ok(api)
}

fn strip_nulls(mut v: Value) -> Value {
    match &mut v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            for x in m.values_mut() {
                *x = strip_nulls(x.take());
            }
        }
        Value::Array(a) => {
            for x in a.iter_mut() {
                *x = strip_nulls(x.take());
            }
        }
        _ => {}
    }
    v
}

type ParamParts = (Vec<Value>, Vec<Value>, Vec<Value>);

/// `RequestParameters`, `ServiceParameters`, `ServiceParametersMap`, `ConstantParameters` and
/// `SystemParameters` → stagegate's parameters (a request parameter's backend name and
/// location come from the map and the service parameter it names).
fn parameters(p: &Params) -> Result<ParamParts, CloudApiError> {
    let mut service: Map<String, Value> = Map::new(); // name -> location
    if let Some(v) = p.json("ServiceParameters")? {
        for s in array(&v, "ServiceParameters")? {
            let s = object(s, "ServiceParameters[]")?;
            let name =
                str_field(s, "ServiceParameters", "ServiceParameterName")?.unwrap_or_default();
            let loc = location(
                str_field(s, "ServiceParameters", "Location")?,
                "ServiceParameters.Location",
            )?;
            service.insert(name, loc.map_or(Value::Null, |l| Value::String(l.into())));
        }
    }
    let mut map: Map<String, Value> = Map::new(); // request name -> service name
    if let Some(v) = p.json("ServiceParametersMap")? {
        for m in array(&v, "ServiceParametersMap")? {
            let m = object(m, "ServiceParametersMap[]")?;
            let req =
                str_field(m, "ServiceParametersMap", "RequestParameterName")?.unwrap_or_default();
            let svc =
                str_field(m, "ServiceParametersMap", "ServiceParameterName")?.unwrap_or_default();
            map.insert(req, Value::String(svc));
        }
    }
    let mut params = Vec::new();
    if let Some(v) = p.json("RequestParameters")? {
        const F: &str = "RequestParameters";
        for r in array(&v, F)? {
            let r = object(r, "RequestParameters[]")?;
            check_keys(
                r,
                F,
                &[
                    "ApiParameterName",
                    "Location",
                    "ParameterType",
                    "Required",
                    "DefaultValue",
                    "DemoValue",
                    "Description",
                    "MaxLength",
                    "MinLength",
                    "MaxValue",
                    "MinValue",
                    "RegularExpression",
                    "EnumValue",
                    "JsonScheme",
                ],
                &[
                    "ArrayItemsType",
                    "DocShow",
                    "DocOrder",
                    "IsHide",
                    "ParameterLocation",
                ],
            )?;
            if str_field(r, F, "JsonScheme")?.is_some_and(|s| !s.is_empty()) {
                return Err(CloudApiError::unsupported(
                    "RequestParameters.JsonScheme",
                    "JSON Schema validation is not supported",
                ));
            }
            let name = str_field(r, F, "ApiParameterName")?.ok_or_else(|| {
                CloudApiError::MissingParameter("RequestParameters.ApiParameterName".into())
            })?;
            let svc = map.get(&name).and_then(Value::as_str).map(str::to_owned);
            let backend_location = svc
                .as_ref()
                .and_then(|s| service.get(s))
                .cloned()
                .unwrap_or(Value::Null);
            let ptype = match upper(str_field(r, F, "ParameterType")?).as_deref() {
                None | Some("" | "STRING") => "STRING",
                Some("INT") => "INT",
                Some("LONG") => "LONG",
                Some("FLOAT") => "FLOAT",
                Some("DOUBLE") => "DOUBLE",
                Some("BOOLEAN") => "BOOLEAN",
                Some(_) => {
                    return Err(CloudApiError::invalid(
                        "RequestParameters.ParameterType",
                        "must be String, Int, Long, Float, Double or Boolean",
                    ));
                }
            };
            let required = match upper(str_field(r, F, "Required")?).as_deref() {
                None | Some("" | "OPTIONAL") => false,
                Some("REQUIRED") => true,
                Some(v) => parse_bool("RequestParameters.Required", v)?,
            };
            let len = |k: &str| -> Result<Option<usize>, CloudApiError> {
                str_field(r, F, k)?
                    .filter(|s| !s.is_empty())
                    .map(|s| {
                        s.parse().map_err(|_| {
                            CloudApiError::invalid(
                                format!("RequestParameters.{k}"),
                                "must be a whole number",
                            )
                        })
                    })
                    .transpose()
            };
            params.push(json!({
                "name": name,
                "location": location(str_field(r, F, "Location")?, "RequestParameters.Location")?
                    .ok_or_else(|| CloudApiError::MissingParameter("RequestParameters.Location".into()))?,
                "type": ptype,
                "required": required,
                "default": str_field(r, F, "DefaultValue")?.filter(|s| !s.is_empty()),
                "min_length": len("MinLength")?,
                "max_length": len("MaxLength")?,
                "min_value": number(str_field(r, F, "MinValue")?, "RequestParameters.MinValue")?,
                "max_value": number(str_field(r, F, "MaxValue")?, "RequestParameters.MaxValue")?,
                "enum_values": str_field(r, F, "EnumValue")?.filter(|s| !s.is_empty())
                    .map(|s| s.split(',').map(str::trim).map(str::to_owned).collect::<Vec<_>>()).unwrap_or_default(),
                "regex": str_field(r, F, "RegularExpression")?.filter(|s| !s.is_empty()),
                "backend_name": svc,
                "backend_location": backend_location,
                "description": str_field(r, F, "Description")?.filter(|s| !s.is_empty()),
                "demo_value": str_field(r, F, "DemoValue")?.filter(|s| !s.is_empty()),
            }));
        }
    }
    let mut constants = Vec::new();
    if let Some(v) = p.json("ConstantParameters")? {
        for c in array(&v, "ConstantParameters")? {
            let c = object(c, "ConstantParameters[]")?;
            constants.push(json!({
                "backend_name": str_field(c, "ConstantParameters", "ServiceParameterName")?.unwrap_or_default(),
                "value": str_field(c, "ConstantParameters", "ConstantValue")?.unwrap_or_default(),
                "location": location(str_field(c, "ConstantParameters", "Location")?, "ConstantParameters.Location")?.unwrap_or("HEAD"),
                "description": str_field(c, "ConstantParameters", "Description")?,
            }));
        }
    }
    let mut systems = Vec::new();
    if let Some(v) = p.json("SystemParameters")? {
        for s in array(&v, "SystemParameters")? {
            let s = object(s, "SystemParameters[]")?;
            let name = str_field(s, "SystemParameters", "ParameterName")?.unwrap_or_default();
            systems.push(json!({
                "name": name,
                "backend_name": str_field(s, "SystemParameters", "ServiceParameterName")?.unwrap_or_default(),
                "location": location(str_field(s, "SystemParameters", "Location")?, "SystemParameters.Location")?.unwrap_or("HEAD"),
            }));
        }
    }
    Ok((params, constants, systems))
}

/// An API as DescribeApi answers it (PascalCase; the complex fields as objects).
pub(super) fn describe_json(
    api: &ApiDefinition,
    group_name: &str,
    deployed: &[(Stage, String)],
) -> Value {
    let r = &api.request;
    let b = &api.backend;
    let loc = |l: crate::model::ParamLocation| serde_json::to_value(l).unwrap_or(Value::Null);
    json!({
        "ApiId": api.id.as_str(),
        "ApiName": api.name,
        "GroupId": api.group_id.as_str(),
        "GroupName": group_name,
        "Description": api.description.clone().unwrap_or_default(),
        "AuthType": serde_json::to_value(api.auth).unwrap_or(Value::Null),
        "AppCodeAuthType": serde_json::to_value(api.appcode_auth).unwrap_or(Value::Null),
        "AllowSignatureMethod": api.signature_methods.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(","),
        "ForceNonceCheck": api.force_nonce_check,
        "DisableInternet": false,
        "Visibility": "PRIVATE",
        "BackendEnable": true,
        "BackendConfig": {"BackendId": b.backend_id.as_str()},
        "RequestConfig": {
            "RequestProtocol": r.protocols.iter().map(|p| serde_json::to_value(p).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()).collect::<Vec<_>>().join(","),
            "RequestHttpMethod": r.method,
            "RequestPath": r.path.as_str(),
            "RequestMode": serde_json::to_value(r.mode).unwrap_or(Value::Null),
            "BodyFormat": r.body_format.map(|f| serde_json::to_value(f).unwrap_or(Value::Null)),
        },
        "ServiceConfig": {
            "ServicePath": b.path,
            "ServiceHttpMethod": b.method,
            "ServiceTimeout": u64::try_from(b.timeout().as_millis()).unwrap_or(u64::MAX),
            "ContentTypeCatagory": serde_json::to_value(b.content_type).unwrap_or(Value::Null),
            "ContentTypeValue": b.content_type_value,
        },
        "RequestParameters": {"RequestParameter": api.parameters.iter().map(|p| json!({
            "ApiParameterName": p.name,
            "Location": loc(p.location),
            "ParameterType": serde_json::to_value(p.param_type).unwrap_or(Value::Null),
            "Required": if p.required { "REQUIRED" } else { "OPTIONAL" },
            "DefaultValue": p.default, "DemoValue": p.demo_value, "Description": p.description,
            "MaxLength": p.max_length, "MinLength": p.min_length, "MaxValue": p.max_value, "MinValue": p.min_value,
            "RegularExpression": p.regex,
            "EnumValue": if p.enum_values.is_empty() { None } else { Some(p.enum_values.join(",")) },
        })).collect::<Vec<_>>()},
        "ServiceParametersMap": {"ServiceParameterMap": api.parameters.iter().map(|p| json!({
            "RequestParameterName": p.name, "ServiceParameterName": p.backend_name(),
        })).collect::<Vec<_>>()},
        "ServiceParameters": {"ServiceParameter": api.parameters.iter().map(|p| json!({
            "ServiceParameterName": p.backend_name(), "Location": loc(p.backend_location()),
            "ParameterType": serde_json::to_value(p.param_type).unwrap_or(Value::Null),
        })).collect::<Vec<_>>()},
        "ConstantParameters": {"ConstantParameter": api.constant_parameters.iter().map(|c| json!({
            "ServiceParameterName": c.backend_name, "ConstantValue": c.value, "Location": loc(c.location), "Description": c.description,
        })).collect::<Vec<_>>()},
        "SystemParameters": {"SystemParameter": api.system_parameters.iter().map(|s| json!({
            "ParameterName": serde_json::to_value(s.name).unwrap_or(Value::Null), "ServiceParameterName": s.backend_name, "Location": loc(s.location),
        })).collect::<Vec<_>>()},
        "ResultSample": api.response.example,
        "FailResultSample": api.response.error_example,
        "ErrorCodeSamples": {"ErrorCodeSample": api.response.error_codes.iter().map(|e| json!({
            "Code": e.code, "Message": e.message, "Description": e.description,
        })).collect::<Vec<_>>()},
        "DeployedInfos": {"DeployedInfo": Stage::BUILT_IN.iter().map(|s| {
            let v = deployed.iter().find(|(d, _)| d == s).map(|(_, v)| v.clone());
            json!({
                "StageName": s.as_str(),
                "DeployedStatus": if v.is_some() { "DEPLOYED" } else { "NONDEPLOYED" },
                "EffectiveVersion": v.unwrap_or_default(),
            })
        }).collect::<Vec<_>>()},
    })
}

pub(super) async fn create(c: &Call<'_>) -> Outcome {
    let p = c.params;
    let group = c.group_id("GroupId")?;
    p.refuse_unless(
        "Visibility",
        &["PUBLIC", "PRIVATE"],
        "must be PUBLIC or PRIVATE",
    )?;
    let api = definition(p, &ApiId::generate(), group.as_str())?;
    let api = c.control.create_api(api).await?;
    Ok(json!({"ApiId": api.id.as_str(), "TagStatus": false}))
}

pub(super) async fn modify(c: &Call<'_>) -> Outcome {
    let p = c.params;
    let id = c.api_id("ApiId")?;
    let current = c.control.api(&id).await?;
    let group = match p.opt("GroupId").filter(|g| !g.is_empty()) {
        Some(g) if g != current.group_id.as_str() => {
            return Err(CloudApiError::invalid(
                "GroupId",
                "an API cannot move to another group",
            ));
        }
        _ => current.group_id.clone(),
    };
    let api = definition(p, &id, group.as_str())?;
    c.control.update_api(api).await?;
    Ok(json!({}))
}

async fn deployed_versions(
    c: &Call<'_>,
    id: &ApiId,
) -> Result<Vec<(Stage, String)>, CloudApiError> {
    Ok(c.control
        .deployments(id)
        .await?
        .into_iter()
        .filter(|d| d.live)
        .map(|d| (d.stage, d.version))
        .collect())
}

pub(super) async fn describe(c: &Call<'_>) -> Outcome {
    let id = c.api_id("ApiId")?;
    let api = c.control.api(&id).await?;
    let group = c.control.group(&api.group_id).await?;
    let deployed = deployed_versions(c, &id).await?;
    Ok(describe_json(&api, &group.name, &deployed))
}

pub(super) async fn list(c: &Call<'_>) -> Outcome {
    let p = c.params;
    let group = p
        .opt("GroupId")
        .filter(|g| !g.is_empty())
        .map(|g| {
            crate::model::GroupId::parse(g)
                .map_err(|e| CloudApiError::invalid("GroupId", e.to_string()))
        })
        .transpose()?;
    let name = p.opt("ApiName").filter(|n| !n.is_empty());
    let api_id = p.opt("ApiId").filter(|n| !n.is_empty());
    let groups = c.control.groups().await;
    let apis: Vec<ApiDefinition> = c
        .control
        .apis(group.as_ref())
        .await
        .into_iter()
        .filter(|a| name.is_none_or(|n| a.name.contains(n)))
        .filter(|a| api_id.is_none_or(|i| a.id.as_str() == i))
        .collect();
    let (items, mut paging) = page(p, apis)?;
    let list: Vec<Value> = items
        .iter()
        .map(|a| json!({
            "ApiId": a.id.as_str(), "ApiName": a.name, "GroupId": a.group_id.as_str(),
            "GroupName": groups.iter().find(|g| g.id == a.group_id).map(|g| g.name.clone()).unwrap_or_default(),
            "Description": a.description.clone().unwrap_or_default(),
            "Visibility": "PRIVATE", "ApiMethod": a.request.method, "ApiPath": a.request.path.as_str(),
            "RegionId": "local",
        }))
        .collect();
    paging["ApiSummarys"] = json!({"ApiSummary": list});
    Ok(paging)
}

pub(super) async fn delete(c: &Call<'_>) -> Outcome {
    let id = c.api_id("ApiId")?;
    if let Some(g) = c.params.opt("GroupId").filter(|g| !g.is_empty()) {
        let api = c.control.api(&id).await?;
        if api.group_id.as_str() != g {
            return Err(CloudApiError::NotFound {
                code: "NotFoundApi",
                message: format!("api `{id}` not found in group `{}`", short(g)),
            });
        }
    }
    c.control.delete_api(&id).await?;
    Ok(json!({}))
}
