//! The admin routes: thin handlers that parse, call the control plane and answer JSON.

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, State};
use axum::response::Response;
use axum::routing::{get, post, put};
use http::request::Parts;
use http::{StatusCode, Uri};
use jiff::Timestamp;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{AdminError, AdminState, Json, query_pairs, reply};
use crate::control::{
    AppPatch, BackendPatch, ConfigDocument, ConfigExport, ConfigFormat, ControlError, NewApp,
    NewBackend, NewGroup, Plan, PlanScope,
};
use crate::model::{
    ApiDefinition, ApiId, AppId, AppKeyPair, BackendId, GroupId, PolicyId, Secret, Stage,
    StageDefinition, VpcAccess, VpcAccessId,
};

type Result<T = Response, E = AdminError> = std::result::Result<T, E>;

/// Path parameters, with refusals as `{"code","message"}`.
pub(crate) struct P<T>(pub(crate) T);

impl<T: DeserializeOwned + Send> FromRequestParts<AdminState> for P<T> {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, s: &AdminState) -> Result<Self> {
        axum::extract::Path::<T>::from_request_parts(parts, s)
            .await
            .map(|p| Self(p.0))
            .map_err(|e| AdminError::InvalidParameter(e.body_text()))
    }
}

pub(crate) fn router(state: AdminState) -> Router {
    #[cfg(feature = "cloudapi")]
    let base = Router::new()
        .route(
            "/access-keys",
            post(super::access_keys::create).get(super::access_keys::list),
        )
        .route(
            "/access-keys/{id}",
            axum::routing::delete(super::access_keys::delete),
        );
    #[cfg(not(feature = "cloudapi"))]
    let base = Router::new();
    base.route("/health", get(health))
        .route("/console", get(super::console::redirect))
        .route("/console/", get(super::console::index))
        .route("/console/{*name}", get(super::console::asset))
        .route("/backends", post(create_backend).get(list_backends))
        .route(
            "/backends/{id}",
            get(get_backend).patch(patch_backend).delete(delete_backend),
        )
        .route(
            "/backends/{id}/stages/{stage}",
            put(put_definition)
                .get(get_definition)
                .delete(delete_definition),
        )
        .route("/backends/{id}/apis", get(backend_apis))
        .route("/vpc-access", post(create_vpc).get(list_vpc))
        .route(
            "/vpc-access/{id}",
            get(get_vpc).put(put_vpc).delete(delete_vpc),
        )
        .route("/groups", post(create_group).get(list_groups))
        .route(
            "/groups/{id}",
            get(get_group).put(put_group).delete(delete_group),
        )
        .route("/groups/{id}/openapi", get(group_openapi))
        .route("/groups/{id}/certificates", get(group_certificates))
        .route(
            "/groups/{id}/domains/{domain}/certificate",
            get(get_certificate)
                .put(put_certificate)
                .delete(delete_certificate),
        )
        .route("/apis", post(create_api).get(list_apis))
        .route("/apis/{id}", get(get_api).put(put_api).delete(delete_api))
        .route("/apis/{id}/publish", post(publish))
        .route("/apis/{id}/unpublish", post(unpublish))
        .route("/apis/{id}/deployments", get(deployments))
        .route("/apis/{id}/rollback", post(rollback))
        .route(
            "/apis/{id}/authorizations",
            post(authorize).get(api_authorizations),
        )
        .route(
            "/apis/{id}/authorizations/{app_id}",
            axum::routing::delete(revoke),
        )
        .route("/apis/{id}/debug", post(super::debug::debug))
        .route("/apis/{id}/policies", post(bind_policy).get(api_policies))
        .route(
            "/apis/{id}/policies/{policy_id}",
            axum::routing::delete(unbind_policy),
        )
        .route("/policies", post(create_policy).get(list_policies))
        .route(
            "/policies/{id}",
            get(get_policy).put(put_policy).delete(delete_policy),
        )
        .route("/apps", post(create_app).get(list_apps))
        .route(
            "/apps/{id}",
            get(get_app).patch(patch_app).delete(delete_app),
        )
        .route("/apps/{id}/keys", post(add_key))
        .route("/apps/{id}/keys/{key}", axum::routing::delete(remove_key))
        .route("/apps/{id}/keys/{key}/rotate", post(rotate_key))
        .route("/apps/{id}/codes", post(add_code).delete(remove_code))
        .route("/apps/{id}/authorizations", get(app_authorizations))
        .route("/export", get(export))
        .route("/import", post(import))
        .route("/config", get(get_config))
        .route("/config/plan", post(plan_config))
        .route("/config/apply", post(apply_config))
        .with_state(state)
}

// ----- parsing helpers -----

pub(crate) fn backend_id(s: &str) -> Result<BackendId> {
    BackendId::parse(s).map_err(|_| AdminError::not_found("backend service", s))
}
pub(crate) fn api_id(s: &str) -> Result<ApiId> {
    ApiId::parse(s).map_err(|_| AdminError::not_found("api", s))
}
pub(crate) fn group_id(s: &str) -> Result<GroupId> {
    GroupId::parse(s).map_err(|_| AdminError::not_found("group", s))
}
pub(crate) fn app_id(s: &str) -> Result<AppId> {
    AppId::parse(s).map_err(|_| AdminError::not_found("app", s))
}
fn policy_id(s: &str) -> Result<PolicyId> {
    PolicyId::parse(s).map_err(|_| AdminError::not_found("policy", s))
}
fn vpc_id(s: &str) -> Result<VpcAccessId> {
    VpcAccessId::parse(s).map_err(|_| AdminError::not_found("vpc access authorization", s))
}
pub(crate) fn stage(s: &str) -> Result<Stage> {
    Stage::parse(s).map_err(AdminError::from)
}

/// The `stage` query parameter: `Ok(None)` when absent, 400 when invalid or repeated.
pub(crate) fn stage_query(uri: &Uri, required: bool) -> Result<Option<Stage>> {
    let pairs = query_pairs(uri.query(), &["stage"])?;
    match pairs.as_slice() {
        [] if required => Err(AdminError::InvalidParameter(
            "query parameter `stage` is required (TEST, PRE or RELEASE)".into(),
        )),
        [] => Ok(None),
        [(_, v)] => stage(v).map(Some),
        _ => Err(AdminError::InvalidParameter(
            "query parameter `stage` is given more than once".into(),
        )),
    }
}

fn object(v: Value) -> Result<serde_json::Map<String, Value>> {
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(AdminError::InvalidJson("expected a JSON object".into())),
    }
}

fn from_value<T: DeserializeOwned>(v: Value) -> Result<T> {
    serde_json::from_value(v).map_err(|e| AdminError::InvalidJson(e.to_string()))
}

// ----- health -----

/// How long `GET /health` waits for the store's revision before counting it unreachable.
const HEALTH_STORE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// 200 `{"status":"ok","store":"reachable",..}` with the node's freshness; 503
/// `{"status":"failing","store":..}` while the store's writes fail, or `"status":"stale"` once
/// the node has not been known current for longer than the configured bound. No token is
/// needed, so a failure is told as a word (`disk full`, `I/O error`, `unreachable`), without
/// the file, the address or the error (those are in the log and in the failing calls' answers).
async fn health(State(s): State<AdminState>) -> Response {
    if let Err(e) = s.control.store().health() {
        let what = if e.is_disk_full() {
            "disk full"
        } else if matches!(e, crate::store::StoreError::Io { .. }) {
            "I/O error"
        } else {
            "failing"
        };
        return reply(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"status": "failing", "store": what}),
        );
    }
    // A store that hangs (a database behind a dead link) must not hang the health check.
    let fresh = tokio::time::timeout(HEALTH_STORE_TIMEOUT, s.control.freshness()).await;
    let (reachable, fresh) = match fresh {
        Ok(f) => (f.store_reachable, f),
        Err(_) => {
            // Timed out: what this node knows without asking the store.
            (false, s.control.freshness_local())
        }
    };
    let behind = if reachable { fresh.behind() } else { None };
    let current = behind == Some(0);
    let stale = !current && fresh.since_caught_up > s.max_staleness;
    let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let body = json!({
        "status": if stale { "stale" } else { "ok" },
        "store": if reachable { "reachable" } else { "unreachable" },
        "applied_revision": fresh.applied_revision,
        "store_revision": if reachable { fresh.store_revision } else { None },
        "behind": behind,
        "last_applied_at": Timestamp::try_from(fresh.last_applied_at).ok().map(|t| t.to_string()),
        "since_applied_ms": ms(fresh.since_applied),
        "since_caught_up_ms": ms(if current { std::time::Duration::ZERO } else { fresh.since_caught_up }),
        "max_staleness_ms": ms(s.max_staleness),
    });
    let status = if stale {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    reply(status, &body)
}

// ----- backends -----

async fn create_backend(State(s): State<AdminState>, Json(b): Json<NewBackend>) -> Result {
    let b = s.control.create_backend(b).await?;
    Ok(reply(StatusCode::CREATED, &b))
}

async fn list_backends(State(s): State<AdminState>, uri: Uri) -> Result {
    query_pairs(uri.query(), &[])?;
    Ok(reply(StatusCode::OK, &s.control.backends().await))
}

async fn get_backend(State(s): State<AdminState>, P(id): P<String>) -> Result {
    let b = s.control.backend(&backend_id(&id)?).await?;
    Ok(reply(StatusCode::OK, &b))
}

async fn patch_backend(
    State(s): State<AdminState>,
    P(id): P<String>,
    Json(v): Json<Value>,
) -> Result {
    let id = backend_id(&id)?;
    let m = object(v)?;
    if m.contains_key("type") {
        return Err(AdminError::InvalidParameter(
            "the type of a backend service cannot be changed; create a new backend instead".into(),
        ));
    }
    let patch: BackendPatch = from_value(Value::Object(m))?;
    let b = s.control.update_backend(&id, patch).await?;
    Ok(reply(StatusCode::OK, &b))
}

async fn delete_backend(State(s): State<AdminState>, P(id): P<String>) -> Result {
    let id = backend_id(&id)?;
    s.control.delete_backend(&id).await?;
    Ok(reply(StatusCode::OK, &json!({"deleted": id})))
}

/// The `dry_run` query parameter: `true` or `false` (the default); 400 for anything else,
/// a repeat, or another parameter.
fn dry_run_query(uri: &Uri) -> Result<bool> {
    let pairs = query_pairs(uri.query(), &["dry_run"])?;
    match pairs.as_slice() {
        [] => Ok(false),
        [(_, v)] if v == "true" => Ok(true),
        [(_, v)] if v == "false" => Ok(false),
        [(_, v)] => Err(AdminError::InvalidParameter(format!(
            "query parameter `dry_run` must be `true` or `false`, not `{}`",
            crate::model::id::truncate(v)
        ))),
        _ => Err(AdminError::InvalidParameter(
            "query parameter `dry_run` is given more than once".into(),
        )),
    }
}

async fn put_definition(
    State(s): State<AdminState>,
    P((id, st)): P<(String, String)>,
    uri: Uri,
    Json(v): Json<Value>,
) -> Result {
    let id = backend_id(&id)?;
    let st = stage(&st)?;
    let dry_run = dry_run_query(&uri)?;
    let kind = s.control.backend(&id).await?.kind;
    object(v.clone())?;
    let def = StageDefinition::from_json(kind, v)?;
    let change = if dry_run {
        s.control.preview_stage_definition(&id, st, def).await?
    } else {
        s.control.set_stage_definition(&id, st, def).await?
    };
    let mut body = serde_json::to_value(&change).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut body {
        m.insert("dry_run".into(), Value::Bool(dry_run));
    }
    Ok(reply(StatusCode::OK, &body))
}

async fn get_definition(State(s): State<AdminState>, P((id, st)): P<(String, String)>) -> Result {
    let id = backend_id(&id)?;
    let st = stage(&st)?;
    match s.control.stage_definition(&id, &st).await? {
        Some(d) => Ok(reply(StatusCode::OK, &d)),
        None => Err(AdminError::NotFound {
            what: "stage definition",
            id: format!("{id}/{st}"),
        }),
    }
}

async fn delete_definition(
    State(s): State<AdminState>,
    P((id, st)): P<(String, String)>,
    uri: Uri,
) -> Result {
    let id = backend_id(&id)?;
    let st = stage(&st)?;
    let dry_run = dry_run_query(&uri)?;
    let report = if dry_run {
        s.control.preview_delete_stage_definition(&id, &st).await?
    } else {
        s.control.delete_stage_definition(&id, &st).await?
    };
    Ok(reply(
        StatusCode::OK,
        &json!({ "report": report, "dry_run": dry_run }),
    ))
}

async fn backend_apis(State(s): State<AdminState>, P(id): P<String>, uri: Uri) -> Result {
    let id = backend_id(&id)?;
    let st = stage_query(&uri, false)?;
    let apis = s.control.apis_using_backend(&id, st.as_ref()).await?;
    Ok(reply(StatusCode::OK, &apis))
}

// ----- VPC access -----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewVpc {
    name: String,
    vpc_id: String,
    instance_id: String,
    port: u16,
    #[serde(default)]
    address: Option<String>,
}

async fn create_vpc(State(s): State<AdminState>, Json(v): Json<NewVpc>) -> Result {
    let v = VpcAccess::new(v.name, v.vpc_id, v.instance_id, v.port, v.address)?;
    let v = s.control.create_vpc_access(v).await?;
    Ok(reply(StatusCode::CREATED, &v))
}

async fn list_vpc(State(s): State<AdminState>) -> Result {
    Ok(reply(StatusCode::OK, &s.control.vpc_accesses().await))
}

async fn get_vpc(State(s): State<AdminState>, P(id): P<String>) -> Result {
    let v = s.control.vpc_access(&vpc_id(&id)?).await?;
    Ok(reply(StatusCode::OK, &v))
}

async fn put_vpc(State(s): State<AdminState>, P(id): P<String>, Json(v): Json<NewVpc>) -> Result {
    let old = s.control.vpc_access(&vpc_id(&id)?).await?;
    let v = VpcAccess {
        name: v.name,
        vpc_id: v.vpc_id,
        instance_id: v.instance_id,
        port: v.port,
        address: v.address,
        ..old
    };
    let v = s.control.update_vpc_access(v).await?;
    Ok(reply(StatusCode::OK, &v))
}

async fn delete_vpc(State(s): State<AdminState>, P(id): P<String>) -> Result {
    let id = vpc_id(&id)?;
    s.control.delete_vpc_access(&id).await?;
    Ok(reply(StatusCode::OK, &json!({"deleted": id})))
}

// ----- groups -----

async fn create_group(State(s): State<AdminState>, Json(g): Json<NewGroup>) -> Result {
    let g = s.control.create_group(g).await?;
    Ok(reply(StatusCode::CREATED, &g))
}

async fn list_groups(State(s): State<AdminState>) -> Result {
    Ok(reply(StatusCode::OK, &s.control.groups().await))
}

async fn get_group(State(s): State<AdminState>, P(id): P<String>) -> Result {
    let g = s.control.group(&group_id(&id)?).await?;
    Ok(reply(StatusCode::OK, &g))
}

async fn put_group(
    State(s): State<AdminState>,
    P(id): P<String>,
    Json(g): Json<NewGroup>,
) -> Result {
    let g = s.control.update_group(&group_id(&id)?, g).await?;
    Ok(reply(StatusCode::OK, &g))
}

async fn delete_group(State(s): State<AdminState>, P(id): P<String>) -> Result {
    let id = group_id(&id)?;
    s.control.delete_group(&id).await?;
    Ok(reply(StatusCode::OK, &json!({"deleted": id})))
}

// ----- domain certificates -----

/// The body of `PUT /groups/{id}/domains/{domain}/certificate`: PEM texts.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CertificateBody {
    certificate: String,
    private_key: Secret,
}

async fn put_certificate(
    State(s): State<AdminState>,
    P((id, domain)): P<(String, String)>,
    Json(b): Json<CertificateBody>,
) -> Result {
    let info = s
        .control
        .set_domain_certificate(
            &group_id(&id)?,
            &domain,
            &b.certificate,
            b.private_key.expose(),
        )
        .await?;
    Ok(reply(StatusCode::OK, &info))
}

async fn get_certificate(
    State(s): State<AdminState>,
    P((id, domain)): P<(String, String)>,
) -> Result {
    let info = s
        .control
        .domain_certificate(&group_id(&id)?, &domain)
        .await?;
    Ok(reply(StatusCode::OK, &info))
}

async fn delete_certificate(
    State(s): State<AdminState>,
    P((id, domain)): P<(String, String)>,
) -> Result {
    s.control
        .delete_domain_certificate(&group_id(&id)?, &domain)
        .await?;
    Ok(axum::response::IntoResponse::into_response(
        StatusCode::NO_CONTENT,
    ))
}

async fn group_certificates(State(s): State<AdminState>, P(id): P<String>) -> Result {
    let list = s.control.group_certificates(&group_id(&id)?).await?;
    Ok(reply(StatusCode::OK, &list))
}

async fn group_openapi(State(s): State<AdminState>, P(id): P<String>, uri: Uri) -> Result {
    let id = group_id(&id)?;
    let st = stage_query(&uri, false)?.unwrap_or(Stage::RELEASE);
    let group = s.control.group(&id).await?;
    let mut published = Vec::new();
    for api in s.control.apis(Some(&id)).await {
        if let Some(d) = s.control.published(&api.id, &st).await {
            published.push(d);
        }
    }
    let mut doc = super::openapi_document(&group, &st, &published);
    let bindings = s.control.policy_bindings(None).await;
    let policies = s.control.policies().await;
    super::openapi::add_policies(&mut doc, &|api: &str| {
        bindings
            .iter()
            .filter(|b| b.api_id.as_str() == api && b.stage == st)
            .filter_map(|b| policies.iter().find(|p| p.id == b.policy_id).cloned())
            .collect()
    });
    Ok(reply(StatusCode::OK, &doc))
}

// ----- APIs -----

/// An API definition from a body: `id` is optional (generated) and, when given with a path id,
/// must equal it.
fn api_from_body(v: Value, path_id: Option<&ApiId>) -> Result<ApiDefinition> {
    let mut m = object(v)?;
    match (m.get("id"), path_id) {
        (Some(Value::String(given)), Some(p)) if given != p.as_str() => {
            return Err(AdminError::InvalidParameter(format!(
                "the body's id `{}` differs from the path's `{p}`",
                crate::model::id::truncate(given)
            )));
        }
        (None, Some(p)) => {
            m.insert("id".into(), Value::String(p.to_string()));
        }
        (None, None) => {
            m.insert("id".into(), Value::String(ApiId::generate().to_string()));
        }
        _ => {}
    }
    from_value(Value::Object(m))
}

async fn create_api(State(s): State<AdminState>, Json(v): Json<Value>) -> Result {
    let api = api_from_body(v, None)?;
    let api = s.control.create_api(api).await?;
    Ok(reply(StatusCode::CREATED, &api))
}

async fn list_apis(State(s): State<AdminState>, uri: Uri) -> Result {
    let pairs = query_pairs(uri.query(), &["group_id"])?;
    let group = match pairs.first() {
        Some((_, g)) => Some(group_id(g)?),
        None => None,
    };
    Ok(reply(StatusCode::OK, &s.control.apis(group.as_ref()).await))
}

async fn get_api(State(s): State<AdminState>, P(id): P<String>) -> Result {
    let api = s.control.api(&api_id(&id)?).await?;
    Ok(reply(StatusCode::OK, &api))
}

async fn put_api(State(s): State<AdminState>, P(id): P<String>, Json(v): Json<Value>) -> Result {
    let id = api_id(&id)?;
    // An unknown id is a 404 whatever the body says.
    s.control.api(&id).await?;
    let api = api_from_body(v, Some(&id))?;
    let api = s.control.update_api(api).await?;
    Ok(reply(StatusCode::OK, &api))
}

async fn delete_api(State(s): State<AdminState>, P(id): P<String>) -> Result {
    let id = api_id(&id)?;
    s.control.delete_api(&id).await?;
    Ok(reply(StatusCode::OK, &json!({"deleted": id})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishBody {
    stage: Stage,
    #[serde(default)]
    description: Option<String>,
}

async fn publish(
    State(s): State<AdminState>,
    P(id): P<String>,
    Json(b): Json<PublishBody>,
) -> Result {
    let id = api_id(&id)?;
    let d = s.control.publish(&id, b.stage, b.description).await?;
    Ok(reply(StatusCode::CREATED, &d))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StageBody {
    stage: Stage,
}

async fn unpublish(
    State(s): State<AdminState>,
    P(id): P<String>,
    Json(b): Json<StageBody>,
) -> Result {
    let id = api_id(&id)?;
    s.control.unpublish(&id, &b.stage).await?;
    Ok(reply(
        StatusCode::OK,
        &json!({"api_id": id, "stage": b.stage, "unpublished": true}),
    ))
}

async fn deployments(State(s): State<AdminState>, P(id): P<String>) -> Result {
    let d = s.control.deployments(&api_id(&id)?).await?;
    Ok(reply(StatusCode::OK, &d))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    stage: Stage,
    version: String,
}

async fn rollback(
    State(s): State<AdminState>,
    P(id): P<String>,
    Json(b): Json<RollbackBody>,
) -> Result {
    let id = api_id(&id)?;
    let d = s.control.rollback(&id, &b.stage, &b.version).await?;
    Ok(reply(StatusCode::OK, &d))
}

// ----- authorizations -----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantBody {
    app_id: AppId,
    stage: Stage,
    #[serde(default)]
    expires_at: Option<Timestamp>,
}

async fn authorize(
    State(s): State<AdminState>,
    P(id): P<String>,
    Json(b): Json<GrantBody>,
) -> Result {
    let id = api_id(&id)?;
    let a = s
        .control
        .authorize(&b.app_id, &id, b.stage, b.expires_at)
        .await?;
    Ok(reply(StatusCode::CREATED, &a))
}

async fn api_authorizations(State(s): State<AdminState>, P(id): P<String>) -> Result {
    let id = api_id(&id)?;
    s.control.api(&id).await?;
    Ok(reply(
        StatusCode::OK,
        &s.control.authorizations(Some(&id), None).await,
    ))
}

async fn revoke(
    State(s): State<AdminState>,
    P((id, app)): P<(String, String)>,
    uri: Uri,
) -> Result {
    let id = api_id(&id)?;
    let app = app_id(&app)?;
    let Some(st) = stage_query(&uri, true)? else {
        return Err(AdminError::InvalidParameter("stage is required".into()));
    };
    s.control.revoke(&app, &id, &st).await?;
    Ok(reply(
        StatusCode::OK,
        &json!({"api_id": id, "app_id": app, "stage": st, "revoked": true}),
    ))
}

// ----- apps -----

/// An app as the admin API shows it: its first key pair and code flattened for convenience,
/// then every key and code.
fn app_view(app: &crate::model::App) -> Value {
    let mut v = serde_json::to_value(app).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        if let Some(k) = app.keys.first() {
            m.insert("app_key".into(), Value::String(k.app_key.clone()));
            m.insert(
                "app_secret".into(),
                Value::String(k.app_secret.expose().to_owned()),
            );
        }
        if let Some(c) = app.codes.first() {
            m.insert("app_code".into(), Value::String(c.expose().to_owned()));
        }
    }
    v
}

async fn create_app(State(s): State<AdminState>, Json(a): Json<NewApp>) -> Result {
    let app = s.control.create_app(a).await?;
    Ok(reply(StatusCode::CREATED, &app_view(&app)))
}

async fn list_apps(State(s): State<AdminState>, uri: Uri) -> Result {
    let pairs = query_pairs(uri.query(), &["name"])?;
    let name = pairs.first().map(|(_, v)| v.as_str());
    let apps: Vec<Value> = s.control.apps(name).await.iter().map(app_view).collect();
    Ok(reply(StatusCode::OK, &apps))
}

async fn get_app(State(s): State<AdminState>, P(id): P<String>) -> Result {
    let app = s.control.app(&app_id(&id)?).await?;
    Ok(reply(StatusCode::OK, &app_view(&app)))
}

async fn patch_app(
    State(s): State<AdminState>,
    P(id): P<String>,
    Json(p): Json<AppPatch>,
) -> Result {
    let app = s.control.update_app(&app_id(&id)?, p).await?;
    Ok(reply(StatusCode::OK, &app_view(&app)))
}

async fn delete_app(State(s): State<AdminState>, P(id): P<String>) -> Result {
    let id = app_id(&id)?;
    s.control.delete_app(&id).await?;
    Ok(reply(StatusCode::OK, &json!({"deleted": id})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyBody {
    #[serde(default)]
    app_key: Option<String>,
    #[serde(default)]
    app_secret: Option<Secret>,
}

async fn add_key(State(s): State<AdminState>, P(id): P<String>, Json(b): Json<KeyBody>) -> Result {
    let id = app_id(&id)?;
    let pair = match (b.app_key, b.app_secret) {
        (None, None) => None,
        (k, sec) => {
            let g = AppKeyPair::generate();
            Some(AppKeyPair {
                app_key: k.unwrap_or(g.app_key),
                app_secret: sec.unwrap_or(g.app_secret),
            })
        }
    };
    let pair = s.control.add_app_key(&id, pair).await?;
    Ok(reply(StatusCode::CREATED, &pair))
}

async fn remove_key(State(s): State<AdminState>, P((id, key)): P<(String, String)>) -> Result {
    let id = app_id(&id)?;
    s.control.remove_app_key(&id, &key).await?;
    Ok(reply(StatusCode::OK, &json!({"deleted": key})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    #[serde(default)]
    app_secret: Option<Secret>,
}

async fn rotate_key(
    State(s): State<AdminState>,
    P((id, key)): P<(String, String)>,
    Json(b): Json<RotateBody>,
) -> Result {
    let id = app_id(&id)?;
    let pair = s.control.rotate_app_secret(&id, &key, b.app_secret).await?;
    Ok(reply(StatusCode::OK, &pair))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeBody {
    #[serde(default)]
    app_code: Option<Secret>,
}

async fn add_code(
    State(s): State<AdminState>,
    P(id): P<String>,
    Json(b): Json<CodeBody>,
) -> Result {
    let id = app_id(&id)?;
    let code = s.control.add_app_code(&id, b.app_code).await?;
    Ok(reply(StatusCode::CREATED, &json!({"app_code": code})))
}

async fn remove_code(
    State(s): State<AdminState>,
    P(id): P<String>,
    Json(b): Json<CodeBody>,
) -> Result {
    let id = app_id(&id)?;
    let Some(code) = b.app_code else {
        return Err(AdminError::InvalidParameter(
            "`app_code` names the code to remove".into(),
        ));
    };
    s.control.remove_app_code(&id, code.expose()).await?;
    Ok(reply(StatusCode::OK, &json!({"deleted": true})))
}

async fn app_authorizations(State(s): State<AdminState>, P(id): P<String>) -> Result {
    let id = app_id(&id)?;
    s.control.app(&id).await?;
    Ok(reply(
        StatusCode::OK,
        &s.control.authorizations(None, Some(&id)).await,
    ))
}

// ----- export / import -----

async fn export(State(s): State<AdminState>) -> Result {
    Ok(reply(StatusCode::OK, &s.control.export().await))
}

async fn import(State(s): State<AdminState>, Json(doc): Json<ConfigExport>) -> Result {
    let summary = s.control.import(doc).await?;
    Ok(reply(StatusCode::OK, &summary))
}

// ----- declarative configuration -----

async fn get_config(State(s): State<AdminState>, uri: Uri) -> Result {
    query_pairs(uri.query(), &[])?;
    Ok(reply(StatusCode::OK, &s.control.export_document().await))
}

/// `?scope=whole|named` (default whole) and, for apply, `?revision=N` (the plan's).
fn config_query(uri: &Uri, revision: bool) -> Result<(PlanScope, Option<u64>)> {
    let allowed: &[&str] = if revision {
        &["scope", "revision"]
    } else {
        &["scope"]
    };
    let pairs = query_pairs(uri.query(), allowed)?;
    let mut scope = None;
    let mut rev = None;
    for (k, v) in &pairs {
        let again = match k.as_str() {
            "scope" => scope.replace(PlanScope::parse(v)?).is_some(),
            _ => rev
                .replace(v.parse::<u64>().map_err(|_| {
                    AdminError::InvalidParameter(format!(
                        "query parameter `revision` `{}` is not a revision number",
                        crate::model::id::truncate(v)
                    ))
                })?)
                .is_some(),
        };
        if again {
            return Err(AdminError::InvalidParameter(format!(
                "query parameter `{k}` is given more than once"
            )));
        }
    }
    Ok((scope.unwrap_or_default(), rev))
}

/// The body as a configuration document: TOML for `Content-Type: application/toml`, else JSON.
async fn config_body(
    s: &AdminState,
    headers: &http::HeaderMap,
    body: Body,
) -> Result<ConfigDocument> {
    let bytes = super::read_body(body, s.body_limit).await?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| AdminError::InvalidJson("the body is not UTF-8".into()))?;
    let toml = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/toml"));
    let format = if toml {
        #[cfg(feature = "toml")]
        {
            ConfigFormat::Toml
        }
        #[cfg(not(feature = "toml"))]
        return Err(AdminError::InvalidParameter(
            "TOML documents need stagegate's `toml` feature; send JSON".into(),
        ));
    } else {
        ConfigFormat::Json
    };
    // An empty body is an empty document, as everywhere in the admin API: with the whole
    // scope that would delete everything, so it must be said (`{}`) rather than left out.
    if text.trim().is_empty() {
        return Err(AdminError::InvalidParameter(
            "the body must be a configuration document (send `{}` for an empty one)".into(),
        ));
    }
    Ok(ConfigDocument::parse(text, format)?)
}

/// A plan as the admin API answers it: its fields and the human diff as `text`.
fn plan_view(plan: &Plan) -> Value {
    let mut v = serde_json::to_value(plan).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("text".into(), Value::String(plan.to_string()));
    }
    v
}

async fn plan_config(
    State(s): State<AdminState>,
    uri: Uri,
    headers: http::HeaderMap,
    body: Body,
) -> Result {
    let (scope, _) = config_query(&uri, false)?;
    let doc = config_body(&s, &headers, body).await?;
    let plan = s.control.plan(&doc, scope).await?;
    Ok(reply(StatusCode::OK, &plan_view(&plan)))
}

async fn apply_config(
    State(s): State<AdminState>,
    uri: Uri,
    headers: http::HeaderMap,
    body: Body,
) -> Result {
    let (scope, revision) = config_query(&uri, true)?;
    let doc = config_body(&s, &headers, body).await?;
    let plan = match revision {
        None => s.control.apply_document(&doc, scope).await?,
        Some(r) => {
            let plan = s.control.plan(&doc, scope).await?;
            if plan.revision != r {
                return Err(ControlError::Stale {
                    planned: r,
                    current: plan.revision,
                }
                .into());
            }
            s.control.apply(&plan).await?;
            plan
        }
    };
    Ok(reply(StatusCode::OK, &plan_view(&plan)))
}

// ----- policies -----

/// `{"name", "type", ...the kind's fields}` as a [`NewPolicy`]: every refusal names its field.
fn new_policy(v: Value) -> Result<crate::control::NewPolicy> {
    let mut m = object(v)?;
    let name = match m.remove("name") {
        Some(Value::String(n)) => n,
        None => {
            return Err(AdminError::InvalidParameter(
                "invalid name: is required".into(),
            ));
        }
        Some(_) => {
            return Err(AdminError::InvalidParameter(
                "invalid name: must be a string".into(),
            ));
        }
    };
    let spec = crate::policy::parse_spec(Value::Object(m))?;
    Ok(crate::control::NewPolicy { name, spec })
}

async fn create_policy(State(s): State<AdminState>, Json(v): Json<Value>) -> Result {
    let p = s.control.create_policy(new_policy(v)?).await?;
    Ok(reply(StatusCode::CREATED, &p.redacted()))
}

async fn list_policies(State(s): State<AdminState>, uri: Uri) -> Result {
    query_pairs(uri.query(), &[])?;
    let list: Vec<Value> = s
        .control
        .policies()
        .await
        .iter()
        .map(crate::policy::Policy::redacted)
        .collect();
    Ok(reply(StatusCode::OK, &list))
}

async fn get_policy(State(s): State<AdminState>, P(id): P<String>) -> Result {
    let p = s.control.policy(&policy_id(&id)?).await?;
    Ok(reply(StatusCode::OK, &p.redacted()))
}

async fn put_policy(State(s): State<AdminState>, P(id): P<String>, Json(v): Json<Value>) -> Result {
    let id = policy_id(&id)?;
    let p = s.control.update_policy(&id, new_policy(v)?).await?;
    Ok(reply(StatusCode::OK, &p.redacted()))
}

async fn delete_policy(State(s): State<AdminState>, P(id): P<String>) -> Result {
    let id = policy_id(&id)?;
    s.control.delete_policy(&id).await?;
    Ok(reply(StatusCode::OK, &json!({"deleted": id})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BindPolicy {
    policy_id: String,
    stage: String,
}

async fn bind_policy(
    State(s): State<AdminState>,
    P(id): P<String>,
    Json(b): Json<BindPolicy>,
) -> Result {
    let api = api_id(&id)?;
    let st = stage(&b.stage)?;
    let policy = policy_id(&b.policy_id)?;
    let binding = s.control.bind_policy(&api, &policy, st).await?;
    Ok(reply(StatusCode::CREATED, &binding))
}

async fn api_policies(State(s): State<AdminState>, P(id): P<String>, uri: Uri) -> Result {
    let api = api_id(&id)?;
    let st = stage_query(&uri, false)?;
    s.control.api(&api).await?;
    let list: Vec<_> = s
        .control
        .policy_bindings(Some(&api))
        .await
        .into_iter()
        .filter(|b| st.as_ref().is_none_or(|st| &b.stage == st))
        .collect();
    Ok(reply(StatusCode::OK, &list))
}

async fn unbind_policy(
    State(s): State<AdminState>,
    P((id, pid)): P<(String, String)>,
    uri: Uri,
) -> Result {
    let api = api_id(&id)?;
    let policy = policy_id(&pid)?;
    let st = stage_query(&uri, true)?.unwrap_or(Stage::RELEASE);
    s.control.unbind_policy(&api, &policy, &st).await?;
    Ok(reply(
        StatusCode::OK,
        &json!({"unbound": {"policy_id": policy, "api_id": api, "stage": st}}),
    ))
}
