//! OpenAPI 3.0 documents for callers, generated from the APIs published in one stage.

use serde_json::{Map, Value, json};

use crate::model::{
    AppCodeMode, AuthType, Group, ParamLocation, ParamType, RequestParameter, Segment, Stage,
};
use crate::store::Deployment;

/// The OpenAPI methods an API method stands for (`ANY` is every one of them).
fn methods(m: &str) -> Vec<&'static str> {
    const ALL: [&str; 7] = ["get", "put", "post", "delete", "options", "head", "patch"];
    match m {
        "ANY" => ALL.to_vec(),
        "TRACE" => vec!["trace"],
        other => ALL
            .iter()
            .copied()
            .filter(|x| x.eq_ignore_ascii_case(other))
            .collect(),
    }
}

/// A value of a parameter's type, or none when the text does not parse as one.
fn typed(t: ParamType, v: &str) -> Option<Value> {
    match t {
        ParamType::String => Some(Value::String(v.to_owned())),
        ParamType::Int | ParamType::Long => v.trim().parse::<i64>().ok().map(Value::from),
        ParamType::Float | ParamType::Double => v
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Value::from),
        ParamType::Boolean => v.trim().parse::<bool>().ok().map(Value::Bool),
    }
}

fn schema(p: &RequestParameter) -> Value {
    let mut s = Map::new();
    let (ty, format) = match p.param_type {
        ParamType::String => ("string", None),
        ParamType::Int => ("integer", Some("int32")),
        ParamType::Long => ("integer", Some("int64")),
        ParamType::Float => ("number", Some("float")),
        ParamType::Double => ("number", Some("double")),
        ParamType::Boolean => ("boolean", None),
    };
    s.insert("type".into(), ty.into());
    if let Some(f) = format {
        s.insert("format".into(), f.into());
    }
    if !p.enum_values.is_empty() {
        let values: Vec<Value> = p
            .enum_values
            .iter()
            .filter_map(|v| typed(p.param_type, v))
            .collect();
        if !values.is_empty() {
            s.insert("enum".into(), Value::Array(values));
        }
    }
    if let Some(d) = p.default.as_deref().and_then(|d| typed(p.param_type, d)) {
        s.insert("default".into(), d);
    }
    match p.param_type {
        ParamType::String => {
            if let Some(n) = p.min_length {
                s.insert("minLength".into(), n.into());
            }
            if let Some(n) = p.max_length {
                s.insert("maxLength".into(), n.into());
            }
            if let Some(r) = &p.regex {
                s.insert("pattern".into(), r.clone().into());
            }
        }
        ParamType::Boolean => {}
        _ => {
            if let Some(n) = p.min_value.filter(|f| f.is_finite()) {
                s.insert("minimum".into(), n.into());
            }
            if let Some(n) = p.max_value.filter(|f| f.is_finite()) {
                s.insert("maximum".into(), n.into());
            }
        }
    }
    Value::Object(s)
}

fn parameter(p: &RequestParameter, location: &str) -> Value {
    let mut v = json!({
        "name": p.name,
        "in": location,
        "required": p.required || location == "path",
        "schema": schema(p),
    });
    if let Some(d) = &p.description {
        v["description"] = d.clone().into();
    }
    if let Some(e) = p.demo_value.as_deref().and_then(|d| typed(p.param_type, d)) {
        v["example"] = e;
    }
    v
}

/// An example as JSON when it parses, else as text.
fn example(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_owned()))
}

/// Generates the OpenAPI 3.0 document of `group` in `stage` from its `published` deployments:
/// one operation per API (every method for `ANY`), its declared parameters with location,
/// type, required flag, enums and limits, its response content type, example and error
/// example, and the AppCode / signature security schemes.
///
/// # Examples
///
/// ```
/// use stagegate::admin::openapi_document;
/// use stagegate::model::{ApiDefinition, BackendId, Group, Stage};
/// use stagegate::store::Deployment;
/// let g = Group::new("shop_api").unwrap();
/// let api = ApiDefinition::new(g.id.clone(), "getUser", "GET", "/users/[id]", BackendId::generate()).unwrap();
/// let d = Deployment { api_id: api.id.clone(), stage: Stage::TEST, version: "20260101000000000".into(),
///     description: None, deployed_at: jiff::Timestamp::now(), snapshot: api };
/// let doc = openapi_document(&g, &Stage::TEST, &[d]);
/// assert_eq!(doc["openapi"], "3.0.3");
/// assert!(doc["paths"]["/users/{id}"]["get"].is_object());
/// ```
#[must_use]
pub fn openapi_document(group: &Group, stage: &Stage, published: &[Deployment]) -> Value {
    let mut paths: Map<String, Value> = Map::new();
    let mut published: Vec<&Deployment> = published.iter().collect();
    published.sort_by(|a, b| a.snapshot.name.cmp(&b.snapshot.name));
    for d in published {
        let api = &d.snapshot;
        // The path in OpenAPI syntax, base path included.
        let base = group
            .base_path
            .as_deref()
            .unwrap_or("")
            .trim_end_matches('/');
        let mut path = base.to_owned();
        let mut template_params: Vec<String> = Vec::new();
        for seg in api.request.path.segments() {
            path.push('/');
            match seg {
                Segment::Literal(l) => path.push_str(l),
                Segment::Param(n) => {
                    path.push('{');
                    path.push_str(n);
                    path.push('}');
                    template_params.push(n.clone());
                }
            }
        }
        if api.request.path.match_all() {
            path.push_str("/{subpath}");
            template_params.push("subpath".into());
        }
        if path.is_empty() {
            path.push('/');
        }

        let mut params = Vec::new();
        let mut form = Map::new();
        let mut form_required = Vec::new();
        for p in &api.parameters {
            match p.location {
                ParamLocation::Head => params.push(parameter(p, "header")),
                ParamLocation::Query => params.push(parameter(p, "query")),
                ParamLocation::Path => {}
                ParamLocation::Body => {
                    let mut s = schema(p);
                    if let Some(desc) = &p.description {
                        s["description"] = desc.clone().into();
                    }
                    form.insert(p.name.clone(), s);
                    if p.required {
                        form_required.push(Value::String(p.name.clone()));
                    }
                }
            }
        }
        for n in &template_params {
            let declared = api
                .parameters
                .iter()
                .find(|p| p.location == ParamLocation::Path && &p.name == n);
            params.push(match declared {
                Some(p) => parameter(p, "path"),
                None => {
                    let desc = if n == "subpath" && api.request.path.match_all() {
                        "any sub-path"
                    } else {
                        "a path segment"
                    };
                    json!({"name": n, "in": "path", "required": true,
                        "schema": {"type": "string"}, "description": desc})
                }
            });
        }

        let content_type = api
            .response
            .content_type
            .clone()
            .unwrap_or_else(|| "application/json".to_owned());
        let mut ok = json!({"description": "Success"});
        let mut ok_content = json!({});
        if let Some(e) = &api.response.example {
            ok_content["example"] = example(e);
        }
        ok["content"] = json!({ (content_type.clone()): ok_content });
        let mut err_content = json!({});
        if let Some(e) = &api.response.error_example {
            err_content["example"] = example(e);
        }
        let mut err_desc =
            "Error; the gateway's own errors carry X-Ca-Error-Code and X-Ca-Error-Message"
                .to_owned();
        for c in &api.response.error_codes {
            err_desc.push_str(&format!("\n- `{}` {}", c.code, c.message));
            if let Some(d) = &c.description {
                err_desc.push_str(&format!(": {d}"));
            }
        }
        let err = json!({"description": err_desc, "content": {"application/json": err_content}});

        let security: Vec<Value> = match api.auth {
            AuthType::Anonymous => Vec::new(),
            AuthType::App => {
                let mut s = vec![json!({"Signature": []})];
                match api.appcode_auth {
                    AppCodeMode::Disable => {}
                    AppCodeMode::Header => s.push(json!({"AppCode": []})),
                    AppCodeMode::HeaderQuery => {
                        s.push(json!({"AppCode": []}));
                        s.push(json!({"AppCodeQuery": []}));
                    }
                }
                s
            }
        };

        let mut op = json!({
            "operationId": api.name,
            "summary": api.name,
            "parameters": params,
            "responses": {"200": ok, "default": err},
            "security": security,
            "x-stagegate-api-id": api.id,
            "x-stagegate-version": d.version,
        });
        if let Some(desc) = &api.description {
            op["description"] = desc.clone().into();
        }
        let ops = paths
            .entry(path.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        for m in methods(&api.request.method) {
            let mut op = op.clone();
            if m != "get" && m != "head" && m != "delete" && !form.is_empty() {
                let mut s = json!({"type": "object", "properties": form.clone()});
                if !form_required.is_empty() {
                    s["required"] = Value::Array(form_required.clone());
                }
                op["requestBody"] = json!({
                    "content": {"application/x-www-form-urlencoded": {"schema": s}}
                });
            }
            if methods(&api.request.method).len() > 1 {
                op["operationId"] = format!("{}_{m}", api.name).into();
            }
            if let Value::Object(o) = ops {
                o.insert(m.to_owned(), op);
            }
        }
    }

    let servers: Vec<Value> = if group.domains.is_empty() {
        vec![json!({"url": "/", "description": "the gateway's address"})]
    } else {
        group
            .domains
            .iter()
            .map(|d| json!({"url": format!("http://{d}")}))
            .collect()
    };
    let mut info = json!({
        "title": group.name,
        "version": stage.as_str(),
    });
    if let Some(d) = &group.description {
        info["description"] = d.clone().into();
    }
    json!({
        "openapi": "3.0.3",
        "info": info,
        "servers": servers,
        "paths": paths,
        "components": {"securitySchemes": {
            "Signature": {
                "type": "apiKey", "in": "header", "name": "X-Ca-Signature",
                "description": "HMAC signature with the app's AppKey (X-Ca-Key) and AppSecret, as the official SDKs compute it",
            },
            "AppCode": {
                "type": "apiKey", "in": "header", "name": "Authorization",
                "description": "`APPCODE <AppCode>`",
            },
            "AppCodeQuery": {"type": "apiKey", "in": "query", "name": "AppCode"},
        }},
        "x-stagegate-stage": stage.as_str(),
        "x-stagegate-group-id": group.id,
    })
}

/// Adds the policies bound in the document's stage to its operations: throttling as a `429`
/// response with the `RateLimit-*` and `Retry-After` headers and an `x-stagegate-rate-limit`
/// extension; CORS as an `x-stagegate-cors` extension and an `options` operation (the preflight
/// the gateway answers) on the path; IP control as `x-stagegate-ip-control` (mode and rule
/// count, never the addresses). `policies` gives the policies bound to each API.
pub(crate) fn add_policies(doc: &mut Value, policies: &dyn Fn(&str) -> Vec<crate::policy::Policy>) {
    use crate::policy::PolicySpec;
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for item in paths.values_mut() {
        let Some(ops) = item.as_object_mut() else {
            continue;
        };
        let mut preflight: Option<Value> = None;
        for op in ops.values_mut() {
            let Some(api) = op.get("x-stagegate-api-id").and_then(Value::as_str) else {
                continue;
            };
            for p in policies(api) {
                match &p.spec {
                    PolicySpec::Throttling(t) => {
                        let int = json!({"schema": {"type": "integer"}});
                        op["responses"]["429"] = json!({
                            "description": format!("Throttled by policy `{}` (T429PA: the API's limit, T429PR: the app's, T429SR: the app's special value)", p.name),
                            "headers": {
                                "Retry-After": int, "RateLimit-Limit": int,
                                "RateLimit-Remaining": int, "RateLimit-Reset": int,
                            },
                        });
                        op["x-stagegate-rate-limit"] = json!({
                            "policy": p.name, "unit": t.unit.as_str(),
                            "api_default": t.api_default, "app_default": t.app_default,
                        });
                    }
                    PolicySpec::Cors(c) => {
                        op["x-stagegate-cors"] = serde_json::to_value(c).unwrap_or_default();
                        let text = json!({"schema": {"type": "string"}});
                        preflight = Some(json!({
                            "summary": format!("CORS preflight, answered by the gateway (policy `{}`)", p.name),
                            "responses": {"204": {
                                "description": "CORS preflight",
                                "headers": {
                                    "Access-Control-Allow-Origin": text,
                                    "Access-Control-Allow-Methods": text,
                                    "Access-Control-Allow-Headers": text,
                                    "Access-Control-Max-Age": {"schema": {"type": "integer"}},
                                },
                            }},
                        }));
                    }
                    PolicySpec::IpControl(i) => {
                        op["x-stagegate-ip-control"] =
                            json!({"policy": p.name, "mode": i.mode, "rules": i.rules.len()});
                    }
                    PolicySpec::BackendSignature(_) => {}
                }
            }
        }
        if let Some(pf) = preflight {
            ops.entry("options").or_insert(pf);
        }
    }
}
