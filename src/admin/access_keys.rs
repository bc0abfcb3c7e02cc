//! The CloudAPI access key pairs (feature `cloudapi`): `POST /access-keys` creates a pair and
//! answers its secret (201, the only time it is shown), `GET /access-keys` lists the ids,
//! `DELETE /access-keys/{id}` removes one (calls signed with it are refused from then on).

use axum::extract::State;
use axum::response::Response;
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::routes::P;
use super::{AdminError, AdminState, Json, reply};
use crate::cloudapi::{AccessKeyError, AccessKeys};
use crate::control::ControlError;
use crate::store::StoreError;

/// `POST /access-keys` takes an empty object: the pair is always generated.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewAccessKey {}

fn keys(s: &AdminState) -> Result<&AccessKeys, AdminError> {
    s.access_keys.as_ref().ok_or(AdminError::NotFound {
        what: "access key set (the CloudAPI endpoint is not mounted)",
        id: String::new(),
    })
}

fn key_error(e: AccessKeyError) -> AdminError {
    match e {
        AccessKeyError::Io { path, source } => {
            AdminError::Control(ControlError::Store(StoreError::Io {
                file: path.display().to_string(),
                error: source,
            }))
        }
        other => AdminError::InvalidParameter(other.to_string()),
    }
}

pub(crate) async fn create(
    State(s): State<AdminState>,
    Json(NewAccessKey {}): Json<NewAccessKey>,
) -> Result<Response, AdminError> {
    let (id, secret) = keys(&s)?.create().map_err(key_error)?;
    tracing::info!(target: "stagegate::admin", access_key_id = %id, "access key created");
    Ok(reply(
        StatusCode::CREATED,
        &json!({"access_key_id": id, "access_key_secret": secret.expose()}),
    ))
}

pub(crate) async fn list(State(s): State<AdminState>) -> Result<Response, AdminError> {
    let ids = keys(&s)?.ids();
    Ok(reply(
        StatusCode::OK,
        &json!({"access_keys": ids.iter().map(|id| json!({"access_key_id": id})).collect::<Vec<_>>()}),
    ))
}

pub(crate) async fn delete(
    State(s): State<AdminState>,
    P(id): P<String>,
) -> Result<Response, AdminError> {
    if keys(&s)?.remove(&id).map_err(key_error)? {
        tracing::info!(target: "stagegate::admin", access_key_id = %id, "access key removed");
        Ok(reply(StatusCode::OK, &json!({"deleted": id})))
    } else {
        Err(AdminError::NotFound {
            what: "access key",
            id: crate::model::id::truncate(&id),
        })
    }
}
