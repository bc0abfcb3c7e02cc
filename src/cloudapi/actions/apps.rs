//! Apps: `CreateApp`, `ModifyApp`, `DeleteApp`, `DescribeApps`, `DescribeAppSecurity`,
//! `ResetAppSecret`.

use serde_json::{Value, json};

use super::{Call, Outcome, app_id_json};
use crate::cloudapi::error::CloudApiError;
use crate::cloudapi::wire::{page, time};
use crate::control::{AppPatch, NewApp};
use crate::model::{App, AppKeyPair, Secret};

pub(super) async fn create(c: &Call<'_>) -> Outcome {
    let p = c.params;
    let spec = NewApp {
        name: p.req("AppName")?.to_owned(),
        description: p
            .opt("Description")
            .filter(|d| !d.is_empty())
            .map(str::to_owned),
        app_key: p.opt("AppKey").filter(|d| !d.is_empty()).map(str::to_owned),
        app_secret: p
            .opt("AppSecret")
            .filter(|d| !d.is_empty())
            .map(Secret::new),
        app_code: p.opt("AppCode").filter(|d| !d.is_empty()).map(Secret::new),
    };
    let app = c.control.create_app(spec).await?;
    Ok(json!({"AppId": app_id_json(&app.id), "TagStatus": false}))
}

pub(super) async fn modify(c: &Call<'_>) -> Outcome {
    let p = c.params;
    let id = c.app_id("AppId")?;
    let patch = AppPatch {
        name: p
            .opt("AppName")
            .filter(|d| !d.is_empty())
            .map(str::to_owned),
        description: p.opt("Description").map(str::to_owned),
        disabled: p.bool("Disabled")?,
    };
    c.control.update_app(&id, patch).await?;
    Ok(json!({}))
}

pub(super) async fn delete(c: &Call<'_>) -> Outcome {
    let id = c.app_id("AppId")?;
    c.control.delete_app(&id).await?;
    Ok(json!({}))
}

fn summary(a: &App) -> Value {
    json!({
        "AppId": app_id_json(&a.id),
        "AppName": a.name,
        "Description": a.description.clone().unwrap_or_default(),
        "Disabled": a.disabled,
        "CreatedTime": time(a.created_at),
        "ModifiedTime": time(a.created_at),
    })
}

pub(super) async fn list(c: &Call<'_>) -> Outcome {
    let p = c.params;
    let id = p.opt("AppId").filter(|i| !i.is_empty());
    let apps: Vec<App> = c
        .control
        .apps(p.opt("AppName").filter(|n| !n.is_empty()))
        .await
        .into_iter()
        .filter(|a| id.is_none_or(|i| a.id.as_str() == i))
        .collect();
    let (items, mut paging) = page(p, apps)?;
    paging["Apps"] = json!({"AppItem": items.iter().map(summary).collect::<Vec<_>>()});
    Ok(paging)
}

/// The app's first key pair and AppCode (`DescribeAppSecurity` is how the console shows the
/// secret; the call itself is signed with an access key, which is the account's own).
pub(super) async fn security(c: &Call<'_>) -> Outcome {
    let id = c.app_id("AppId")?;
    let app = c.control.app(&id).await?;
    let key = app.keys.first();
    Ok(json!({
        "AppKey": key.map(|k| k.app_key.clone()).unwrap_or_default(),
        "AppSecret": key.map(|k| k.app_secret.expose().to_owned()).unwrap_or_default(),
        "AppCode": app.codes.first().map(|s| s.expose().to_owned()).unwrap_or_default(),
        "CreatedTime": time(app.created_at),
        "ModifiedTime": time(app.created_at),
    }))
}

/// Gives the key pair named by `AppKey` a new secret (`NewAppSecret`, else a generated one),
/// and with `NewAppKey` a new key too: the new pair is added before the old one is removed, so
/// no moment leaves the app without a working pair.
pub(super) async fn reset_secret(c: &Call<'_>) -> Outcome {
    let p = c.params;
    let key = p.req("AppKey")?;
    let app = c
        .control
        .apps(None)
        .await
        .into_iter()
        .find(|a| a.keys.iter().any(|k| k.app_key == key))
        .ok_or_else(|| CloudApiError::NotFound {
            code: "NotFoundAppKey",
            message: "app key not found".into(),
        })?;
    let secret = p
        .opt("NewAppSecret")
        .filter(|s| !s.is_empty())
        .map(Secret::new);
    match p.opt("NewAppKey").filter(|k| !k.is_empty() && *k != key) {
        None => {
            c.control.rotate_app_secret(&app.id, key, secret).await?;
        }
        Some(new_key) => {
            let pair = AppKeyPair {
                app_key: new_key.to_owned(),
                app_secret: secret.unwrap_or_else(Secret::generate),
            };
            pair.validate()
                .map_err(|e| CloudApiError::invalid("NewAppKey", e.to_string()))?;
            c.control.add_app_key(&app.id, Some(pair)).await?;
            c.control.remove_app_key(&app.id, key).await?;
        }
    }
    Ok(json!({}))
}
