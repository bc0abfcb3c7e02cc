//! Apps, their credentials (key pairs and AppCodes) and their authorizations to call APIs.

use std::collections::HashMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::state::State;
use super::{ControlError, ControlPlane, Result, delete, put};
use crate::model::{ApiId, App, AppId, AppKeyPair, Authorization, Secret, Stage, ValidationError};
use crate::store::{Entity, Key, Write};

/// What to create an app with; keys, secret and code are generated unless supplied.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewApp {
    /// Name, 4–26 characters.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Your own AppKey.
    #[serde(default)]
    pub app_key: Option<String>,
    /// Your own AppSecret.
    #[serde(default)]
    pub app_secret: Option<Secret>,
    /// Your own AppCode.
    #[serde(default)]
    pub app_code: Option<Secret>,
}

/// Changes to an app.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppPatch {
    /// A new name.
    #[serde(default)]
    pub name: Option<String>,
    /// A new description.
    #[serde(default)]
    pub description: Option<String>,
    /// Enable or disable.
    #[serde(default)]
    pub disabled: Option<bool>,
}

/// The deletes of every grant whose app and API `of` picks (the cascade of deleting an app or
/// an API).
pub(super) fn delete_grants<'s>(
    state: &'s State,
    of: impl Fn(&AppId, &ApiId) -> bool + 's,
) -> impl Iterator<Item = Write> + 's {
    state
        .authorizations
        .keys()
        .filter(move |(app, api, _)| of(app, api))
        .map(|(app, api, stage)| delete(state, Key::authorization(app, api, stage)))
}

fn check_credentials_unique(state: &State, app: &App) -> Result<()> {
    for other in state.apps.values().filter(|o| o.value.id != app.id) {
        if other.value.name == app.name {
            return Err(ControlError::AlreadyExists {
                what: "app",
                name: app.name.clone(),
            });
        }
        for k in &app.keys {
            if other.value.keys.iter().any(|o| o.app_key == k.app_key) {
                return Err(ControlError::AlreadyExists {
                    what: "app key",
                    name: k.app_key.clone(),
                });
            }
        }
        for c in &app.codes {
            if other.value.codes.iter().any(|o| o == c) {
                return Err(ControlError::AlreadyExists {
                    what: "app code",
                    name: "****".into(),
                });
            }
        }
    }
    let mut keys: Vec<&str> = app.keys.iter().map(|k| k.app_key.as_str()).collect();
    keys.sort_unstable();
    if keys.windows(2).any(|w| w[0] == w[1]) {
        return Err(ControlError::AlreadyExists {
            what: "app key",
            name: keys.join(","),
        });
    }
    Ok(())
}

impl ControlPlane {
    async fn save_app(&self, state: &mut State, app: App) -> Result<App> {
        app.validate()?;
        check_credentials_unique(state, &app)?;
        let w = put(state, Entity::App(app.clone()));
        self.commit_one(state, w).await?;
        Ok(app)
    }

    async fn with_app<T>(
        &self,
        id: &AppId,
        f: impl FnOnce(&mut App) -> Result<T>,
    ) -> Result<(App, T)> {
        let mut state = self.state.lock().await;
        let mut app = state.app(id)?.clone();
        let out = f(&mut app)?;
        let app = self.save_app(&mut state, app).await?;
        Ok((app, out))
    }

    /// Creates an app with one key pair and one AppCode (generated unless supplied).
    ///
    /// # Errors
    ///
    /// [`ControlError::Validation`], [`ControlError::AlreadyExists`] (name, key or code taken).
    pub async fn create_app(&self, spec: NewApp) -> Result<App> {
        let mut app = App::new(spec.name)?;
        app.description = spec.description;
        if let Some(k) = spec.app_key {
            app.keys[0].app_key = k;
        }
        if let Some(s) = spec.app_secret {
            app.keys[0].app_secret = s;
        }
        if let Some(c) = spec.app_code {
            app.codes[0] = c;
        }
        let mut state = self.state.lock().await;
        self.save_app(&mut state, app).await
    }

    /// Renames, describes, enables or disables an app.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`], [`ControlError::Validation`], [`ControlError::AlreadyExists`].
    pub async fn update_app(&self, id: &AppId, patch: AppPatch) -> Result<App> {
        self.with_app(id, |app| {
            if let Some(n) = patch.name {
                app.name = n;
            }
            if let Some(d) = patch.description {
                app.description = Some(d);
            }
            if let Some(d) = patch.disabled {
                app.disabled = d;
            }
            Ok(())
        })
        .await
        .map(|(a, ())| a)
    }

    /// Deletes an app and its authorizations.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`].
    pub async fn delete_app(&self, id: &AppId) -> Result<()> {
        let mut state = self.state.lock().await;
        state.app(id)?;
        let mut writes = vec![delete(&state, Key::app(id))];
        writes.extend(delete_grants(&state, |app, _| app == id));
        self.commit(&mut state, writes, HashMap::new()).await
    }

    /// One app.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`].
    pub async fn app(&self, id: &AppId) -> Result<App> {
        self.state.lock().await.app(id).cloned()
    }

    /// Apps whose name contains `text` (case-insensitive), or all, by name.
    pub async fn apps(&self, name_contains: Option<&str>) -> Vec<App> {
        let needle = name_contains.map(str::to_lowercase);
        self.state.lock().await.by_name(|a: &App| {
            needle
                .as_deref()
                .is_none_or(|n| a.name.to_lowercase().contains(n))
        })
    }

    /// Adds a key pair to an app (generated unless supplied).
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`], [`ControlError::Validation`], [`ControlError::AlreadyExists`].
    pub async fn add_app_key(&self, id: &AppId, pair: Option<AppKeyPair>) -> Result<AppKeyPair> {
        let pair = pair.unwrap_or_else(AppKeyPair::generate);
        let added = pair.clone();
        self.with_app(id, move |app| {
            app.keys.push(pair);
            Ok(())
        })
        .await?;
        Ok(added)
    }

    /// Removes a key pair from an app; calls signed with it fail from the next request on.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`] for an unknown app or key.
    pub async fn remove_app_key(&self, id: &AppId, app_key: &str) -> Result<()> {
        self.with_app(id, |app| {
            let before = app.keys.len();
            app.keys.retain(|k| k.app_key != app_key);
            if app.keys.len() == before {
                return Err(ControlError::not_found("app key", app_key));
            }
            Ok(())
        })
        .await
        .map(|_| ())
    }

    /// Gives an app key a new secret (generated unless supplied); the old secret stops working
    /// on the next request.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`] for an unknown app or key, [`ControlError::Validation`].
    pub async fn rotate_app_secret(
        &self,
        id: &AppId,
        app_key: &str,
        secret: Option<Secret>,
    ) -> Result<AppKeyPair> {
        let secret = secret.unwrap_or_else(Secret::generate);
        let (_, pair) = self
            .with_app(id, |app| {
                let k = app
                    .keys
                    .iter_mut()
                    .find(|k| k.app_key == app_key)
                    .ok_or_else(|| ControlError::not_found("app key", app_key))?;
                k.app_secret = secret;
                Ok(k.clone())
            })
            .await?;
        Ok(pair)
    }

    /// Adds an AppCode to an app (generated unless supplied).
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`], [`ControlError::Validation`], [`ControlError::AlreadyExists`].
    pub async fn add_app_code(&self, id: &AppId, code: Option<Secret>) -> Result<Secret> {
        let code = code.unwrap_or_else(Secret::generate);
        let added = code.clone();
        self.with_app(id, move |app| {
            app.codes.push(code);
            Ok(())
        })
        .await?;
        Ok(added)
    }

    /// Removes an AppCode from an app.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`] for an unknown app or code.
    pub async fn remove_app_code(&self, id: &AppId, code: &str) -> Result<()> {
        self.with_app(id, |app| {
            let before = app.codes.len();
            app.codes.retain(|c| !c.ct_eq_str(code));
            if app.codes.len() == before {
                return Err(ControlError::not_found("app code", "****"));
            }
            Ok(())
        })
        .await
        .map(|_| ())
    }

    // ----- authorizations -----

    /// Lets `app` call `api` in `stage` (until `expires_at`, if given). Authorizing again
    /// replaces the expiry.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`] for an unknown app or API, [`ControlError::Validation`] for an
    /// expiry in the past.
    pub async fn authorize(
        &self,
        app: &AppId,
        api: &ApiId,
        stage: Stage,
        expires_at: Option<Timestamp>,
    ) -> Result<Authorization> {
        let mut state = self.state.lock().await;
        state.app(app)?;
        state.api(api)?;
        let now = Timestamp::now();
        if expires_at.is_some_and(|e| e <= now) {
            return Err(ValidationError::InvalidField {
                field: "expires_at".into(),
                reason: "must be in the future".into(),
            }
            .into());
        }
        let a = Authorization {
            app_id: app.clone(),
            api_id: api.clone(),
            stage,
            expires_at,
            created_at: now,
        };
        let w = put(&state, Entity::Authorization(a.clone()));
        self.commit_one(&mut state, w).await?;
        Ok(a)
    }

    /// Withdraws a grant; the next call is refused.
    ///
    /// # Errors
    ///
    /// [`ControlError::NotFound`] when there is no such grant.
    pub async fn revoke(&self, app: &AppId, api: &ApiId, stage: &Stage) -> Result<()> {
        let mut state = self.state.lock().await;
        state.authorization(app, api, stage)?;
        let w = delete(&state, Key::authorization(app, api, stage));
        self.commit_one(&mut state, w).await
    }

    /// The grants of an API, or of an app, or all.
    pub async fn authorizations(
        &self,
        api: Option<&ApiId>,
        app: Option<&AppId>,
    ) -> Vec<Authorization> {
        let state = self.state.lock().await;
        let mut v: Vec<_> = state
            .authorizations
            .values()
            .filter(|a| {
                api.is_none_or(|x| &a.value.api_id == x) && app.is_none_or(|x| &a.value.app_id == x)
            })
            .map(|a| a.value.clone())
            .collect();
        v.sort_by(|a, b| (&a.api_id, &a.app_id, &a.stage).cmp(&(&b.api_id, &b.app_id, &b.stage)));
        v
    }
}
