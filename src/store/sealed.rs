//! [`SealedStore`]: app secrets, AppCodes and domain certificates' private keys sealed at rest,
//! in any [`Store`].
//!
//! The wrapper seals the secret fields of every [`App`] it writes (each key pair's AppSecret and
//! each AppCode), and the private key of every [`DomainCertificate`], with XChaCha20-Poly1305 under a [`SecretsKey`] given at start, and opens them on
//! every read ([`load`](Store::load), [`get`](Store::get), [`changes_since`](Store::changes_since)).
//! The adapter underneath (memory, redb, PostgreSQL, yours) only ever sees sealed values; the
//! control plane above only ever sees plain ones.
//!
//! A sealed value is text: `sg-sealed:v1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>`, with a
//! fresh random 192-bit nonce per value. The key id (16 hex digits of a hash of the key) tells a
//! wrong key from damage; the associated data binds each value to its app and field (a sealed
//! AppSecret copied into another app or key pair does not open).
//!
//! [`SealedStore::open`] reads the whole store first and refuses to start, writing nothing,
//! when it holds sealed values and no key was given, or values sealed under another key, or a
//! value that does not open (tampered). Plaintext values already in the store (written before
//! the key was given) stay readable and are sealed on their next write, or all at once with
//! [`SealedStore::seal_existing`].

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use sha2::Digest as _;

use super::{
    BoxFuture, Change, Entity, Expect, Key, Loaded, Revision, Store, StoreError, Versioned, Write,
};
use crate::model::{App, DomainCertificate, Secret};

/// What every sealed value starts with (then the format version).
pub const SEALED_PREFIX: &str = "sg-sealed:";
/// The prefix of this version's values.
const V1: &str = "sg-sealed:v1:";
/// Nonce length of XChaCha20-Poly1305.
const NONCE_LEN: usize = 24;

/// The key that seals app secrets at rest: 32 random bytes.
///
/// Given as 64 hex digits or as base64 (standard or URL-safe, padded or not) of 32 bytes.
/// `Debug` shows only its [id](Self::id); the key itself is never printed, and its cipher
/// state is wiped when dropped.
///
/// # Examples
///
/// ```
/// use stagegate::store::SecretsKey;
/// let hex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
/// let key = SecretsKey::parse(hex).unwrap();
/// assert_eq!(key.id().len(), 16);
/// assert_eq!(format!("{key:?}"), format!("SecretsKey {{ id: \"{}\" }}", key.id()));
/// let err = SecretsKey::parse("too-short").unwrap_err();
/// assert!(err.to_string().contains("32 bytes"), "{err}");
/// ```
#[derive(Clone)]
pub struct SecretsKey {
    cipher: XChaCha20Poly1305,
    id: String,
}

impl fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretsKey").field("id", &self.id).finish()
    }
}

impl SecretsKey {
    /// The key of these 32 bytes.
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let mut h = sha2::Sha256::new();
        h.update(b"stagegate sealed-store key id v1\0");
        h.update(bytes);
        let digest = h.finalize();
        let id = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        Self {
            cipher: XChaCha20Poly1305::new(&bytes.into()),
            id,
        }
    }

    /// A new random key (from the operating system's CSPRNG), and its text form (64 hex
    /// digits) to keep somewhere safe.
    ///
    /// # Errors
    ///
    /// [`SealError::Random`] when the operating system gives no random bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// let (key, text) = stagegate::store::SecretsKey::generate().unwrap();
    /// assert_eq!(stagegate::store::SecretsKey::parse(&text).unwrap().id(), key.id());
    /// ```
    pub fn generate() -> Result<(Self, String), SealError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|_| SealError::Random)?;
        let text = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Ok((Self::from_bytes(bytes), text))
    }

    /// Reads a key given as 64 hex digits or as base64 of 32 bytes (surrounding whitespace
    /// is ignored).
    ///
    /// # Errors
    ///
    /// [`SealError::InvalidKey`] saying what is expected (the input is never repeated).
    pub fn parse(text: &str) -> Result<Self, SealError> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut out = [0u8; 32];
            for (i, o) in out.iter_mut().enumerate() {
                *o = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)
                    .map_err(|_| SealError::InvalidKey)?;
            }
            out
        } else {
            let decoded = [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
                .iter()
                .find_map(|e| e.decode(text).ok())
                .ok_or(SealError::InvalidKey)?;
            <[u8; 32]>::try_from(decoded.as_slice()).map_err(|_| SealError::InvalidKey)?
        };
        Ok(Self::from_bytes(bytes))
    }

    /// The key's id: 16 hex digits of a hash of the key, stored with every sealed value. It
    /// tells which key sealed a value without revealing the key.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Seals `plain` for the field named by `aad`.
    fn seal(&self, plain: &str, aad: &str) -> Result<String, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| SealError::Random)?;
        let sealed = self
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| SealError::Random)?;
        let mut blob = Vec::with_capacity(NONCE_LEN + sealed.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&sealed);
        Ok(format!("{V1}{}:{}", self.id, URL_SAFE_NO_PAD.encode(blob)))
    }

    /// Opens a sealed value of the field named by `aad`.
    fn open(&self, sealed: &str, aad: &str, record: &Key) -> Result<String, SealError> {
        let parsed = parse_sealed(sealed, record)?;
        if parsed.key_id != self.id {
            return Err(SealError::WrongKey {
                found: parsed.key_id.to_owned(),
                given: self.id.clone(),
            });
        }
        let damaged = || SealError::Damaged {
            record: record.to_string(),
        };
        let blob = URL_SAFE_NO_PAD.decode(parsed.body).map_err(|_| damaged())?;
        if blob.len() < NONCE_LEN {
            return Err(damaged());
        }
        let (nonce, ciphertext) = blob.split_at(NONCE_LEN);
        let nonce = <[u8; NONCE_LEN]>::try_from(nonce).map_err(|_| damaged())?;
        let plain = self
            .cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| damaged())?;
        String::from_utf8(plain).map_err(|_| damaged())
    }
}

/// A sealed value's parts.
struct Parsed<'a> {
    key_id: &'a str,
    body: &'a str,
}

fn parse_sealed<'a>(sealed: &'a str, record: &Key) -> Result<Parsed<'a>, SealError> {
    let damaged = || SealError::Damaged {
        record: record.to_string(),
    };
    let rest = sealed.strip_prefix(SEALED_PREFIX).ok_or_else(damaged)?;
    let Some(rest) = rest.strip_prefix("v1:") else {
        return Err(SealError::UnknownFormat {
            record: record.to_string(),
        });
    };
    let (key_id, body) = rest.split_once(':').ok_or_else(damaged)?;
    Ok(Parsed { key_id, body })
}

/// Whether `value` is a sealed value (of any format version).
///
/// # Examples
///
/// ```
/// use stagegate::store::is_sealed;
/// assert!(is_sealed("sg-sealed:v1:0011223344556677:AAAA"));
/// assert!(!is_sealed("c1ae97aaa7e45f21d10824bc44678fee"));
/// ```
#[must_use]
pub fn is_sealed(value: &str) -> bool {
    value.starts_with(SEALED_PREFIX)
}

/// Why sealed values cannot be read or written, or a key cannot be used.
///
/// No variant carries a secret or a key; the messages say what to do.
///
/// # Examples
///
/// ```
/// use stagegate::store::SealError;
/// let e = SealError::KeyMissing { key_id: "0011223344556677".into() };
/// assert!(e.to_string().contains("--secrets-key"), "{e}");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The key given is not 32 bytes as 64 hex digits or base64.
    #[error(
        "invalid secrets key: expected 32 bytes as 64 hex digits or base64 (e.g. `openssl rand -hex 32`)"
    )]
    InvalidKey,
    /// The store holds sealed secrets but no key was given.
    #[error(
        "the store holds app secrets sealed with key id {key_id}, but no secrets key was given: \
         start with that key (--secrets-key / STAGEGATE_SECRETS_KEY); nothing was changed"
    )]
    KeyMissing {
        /// The id of the key that sealed them.
        key_id: String,
    },
    /// The store holds secrets sealed under another key.
    #[error(
        "the store holds app secrets sealed with key id {found}, but the secrets key given has \
         id {given}: start with the key that sealed them; nothing was changed"
    )]
    WrongKey {
        /// The id stored with the values.
        found: String,
        /// The id of the key given.
        given: String,
    },
    /// A sealed value does not open under the right key: it was altered or damaged.
    #[error("a sealed secret of {record} does not open: it was altered or damaged")]
    Damaged {
        /// The record.
        record: String,
    },
    /// A sealed value of a format version this build does not know.
    #[error("a sealed secret of {record} has a format this version does not read")]
    UnknownFormat {
        /// The record.
        record: String,
    },
    /// The operating system gave no random bytes.
    #[error("the operating system's random number generator failed")]
    Random,
}

impl From<SealError> for StoreError {
    fn from(e: SealError) -> Self {
        match e {
            SealError::Damaged { ref record } | SealError::UnknownFormat { ref record } => {
                StoreError::Corrupt {
                    key: record.clone(),
                    reason: e.to_string(),
                }
            }
            other => StoreError::Backend(Box::new(other)),
        }
    }
}

/// A [`Store`] that seals app secrets and AppCodes in the store it wraps (feature `sealed`).
///
/// Built with [`open`](Self::open), which checks every sealed value first. Without a key it
/// passes everything through (and refuses to read a sealed value), so a gateway can always
/// wrap its store and let the key be optional.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use stagegate::store::{MemoryStore, SealedStore, SecretsKey, Store, is_sealed};
/// use stagegate::{ControlPlane, control::NewApp};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let raw = Arc::new(MemoryStore::new());
/// let (key, _text) = SecretsKey::generate().unwrap();
/// let sealed = SealedStore::open(Arc::clone(&raw), Some(key.clone())).await.unwrap();
/// let control = ControlPlane::open(sealed).await.unwrap();
/// let app = control.create_app(NewApp { name: "sealed_app".into(), ..Default::default() }).await.unwrap();
///
/// // the control plane sees the secret; the store underneath holds it sealed
/// let stored = raw.load().await.unwrap();
/// let stagegate::store::Entity::App(at_rest) = &stored.records[0].value else { panic!() };
/// assert!(is_sealed(at_rest.keys[0].app_secret.expose()));
/// assert!(is_sealed(at_rest.codes[0].expose()));
///
/// // a node without the key, or with another, does not start
/// assert!(SealedStore::open(Arc::clone(&raw), None).await.is_err());
/// let (other, _) = SecretsKey::generate().unwrap();
/// assert!(SealedStore::open(Arc::clone(&raw), Some(other)).await.is_err());
/// // with the key, everything reads back
/// let again = ControlPlane::open(SealedStore::open(raw, Some(key)).await.unwrap()).await.unwrap();
/// # let _ = (app, again);
/// # });
/// ```
pub struct SealedStore<S> {
    inner: S,
    key: Option<SecretsKey>,
}

impl<S: fmt::Debug> fmt::Debug for SealedStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedStore")
            .field("inner", &self.inner)
            .field("key_id", &self.key.as_ref().map(SecretsKey::id))
            .finish()
    }
}

/// The associated data of an AppSecret: its app and AppKey.
fn secret_aad(app: &App, app_key: &str) -> String {
    format!("stagegate/app/{}/secret/{app_key}", app.id)
}

/// The associated data of a domain certificate's private key: its group and domain.
fn certificate_aad(c: &DomainCertificate) -> String {
    format!(
        "stagegate/domain_certificate/{}:{}/private_key",
        c.group_id, c.domain
    )
}

/// The associated data of an AppCode: its app.
fn code_aad(app: &App) -> String {
    format!("stagegate/app/{}/code", app.id)
}

impl<S: Store> SealedStore<S> {
    /// Wraps `inner`, sealing with `key` (or, with `None`, passing through), after checking
    /// that every sealed value in it opens: nothing is written.
    ///
    /// # Errors
    ///
    /// [`OpenError::Seal`] with [`SealError::KeyMissing`] when the store holds sealed values
    /// and `key` is `None`, [`SealError::WrongKey`] when they were sealed under another key,
    /// [`SealError::Damaged`] when one does not open (tampered);
    /// [`OpenError::Store`] when the store cannot be read.
    pub async fn open(inner: S, key: Option<SecretsKey>) -> Result<Self, OpenError> {
        let store = Self { inner, key };
        let loaded = store.inner.load().await.map_err(OpenError::Store)?;
        for record in &loaded.records {
            if matches!(record.value, Entity::App(_) | Entity::DomainCertificate(_)) {
                store
                    .open_entity(record.value.clone())
                    .map_err(OpenError::Seal)?;
            }
        }
        Ok(store)
    }

    /// The store underneath (which holds the sealed values).
    #[must_use]
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Seals every plaintext app secret and AppCode still in the store (written before a key
    /// was given), in one commit, and returns how many apps were rewritten. Without a key it
    /// does nothing. Each app is written only if it is still at the version read.
    ///
    /// The change history of the store underneath may keep the earlier plaintext writes until
    /// it is compacted.
    ///
    /// # Errors
    ///
    /// The store's error; a [`StoreError::Conflict`] when an app changed meanwhile (run it
    /// again).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use stagegate::store::{Entity, Expect, MemoryStore, SealedStore, SecretsKey, Store, Write, is_sealed};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let raw = Arc::new(MemoryStore::new());
    /// let app = stagegate::model::App::new("plain_app").unwrap();
    /// raw.commit(vec![Write::put(Entity::App(app), Expect::Absent)]).await.unwrap();
    /// let (key, _) = SecretsKey::generate().unwrap();
    /// let store = SealedStore::open(Arc::clone(&raw), Some(key)).await.unwrap();
    /// assert_eq!(store.seal_existing().await.unwrap(), 1);
    /// assert_eq!(store.seal_existing().await.unwrap(), 0);
    /// let Entity::App(at_rest) = &raw.load().await.unwrap().records[0].value else { panic!() };
    /// assert!(is_sealed(at_rest.codes[0].expose()));
    /// # });
    /// ```
    pub async fn seal_existing(&self) -> Result<usize, StoreError> {
        if self.key.is_none() {
            return Ok(0);
        }
        let loaded = self.inner.load().await?;
        let mut writes = Vec::new();
        for record in loaded.records {
            let plain = match &record.value {
                Entity::App(app) => {
                    app.keys.iter().any(|k| !is_sealed(k.app_secret.expose()))
                        || app.codes.iter().any(|c| !is_sealed(c.expose()))
                }
                Entity::DomainCertificate(c) => !is_sealed(c.private_key.expose()),
                _ => false,
            };
            if plain {
                let opened = self.open_entity(record.value)?;
                writes.push(Write::put(
                    self.seal_entity(opened)?,
                    Expect::Version(record.version),
                ));
            }
        }
        let n = writes.len();
        if n > 0 {
            self.inner.commit(writes).await?;
        }
        Ok(n)
    }

    /// Seals an app's secret fields (those not sealed yet).
    fn seal_app(&self, mut app: App) -> Result<App, SealError> {
        let Some(key) = &self.key else {
            return Ok(app);
        };
        let code_aad = code_aad(&app);
        let secret_aads: Vec<String> = app
            .keys
            .iter()
            .map(|k| secret_aad(&app, &k.app_key))
            .collect();
        for (pair, aad) in app.keys.iter_mut().zip(&secret_aads) {
            if !is_sealed(pair.app_secret.expose()) {
                pair.app_secret = Secret::new(key.seal(pair.app_secret.expose(), aad)?);
            }
        }
        for code in &mut app.codes {
            if !is_sealed(code.expose()) {
                *code = Secret::new(key.seal(code.expose(), &code_aad)?);
            }
        }
        Ok(app)
    }

    /// Opens an app's sealed fields (plaintext ones pass).
    fn open_app(&self, mut app: App, record: &Key) -> Result<App, SealError> {
        let code_aad = code_aad(&app);
        let secret_aads: Vec<String> = app
            .keys
            .iter()
            .map(|k| secret_aad(&app, &k.app_key))
            .collect();
        let open = |value: &Secret, aad: &str| -> Result<Option<Secret>, SealError> {
            if !is_sealed(value.expose()) {
                return Ok(None);
            }
            match &self.key {
                Some(key) => Ok(Some(Secret::new(key.open(value.expose(), aad, record)?))),
                None => Err(SealError::KeyMissing {
                    key_id: parse_sealed(value.expose(), record)?.key_id.to_owned(),
                }),
            }
        };
        for (pair, aad) in app.keys.iter_mut().zip(&secret_aads) {
            if let Some(plain) = open(&pair.app_secret, aad)? {
                pair.app_secret = plain;
            }
        }
        for code in &mut app.codes {
            if let Some(plain) = open(code, &code_aad)? {
                *code = plain;
            }
        }
        Ok(app)
    }

    fn open_entity(&self, entity: Entity) -> Result<Entity, SealError> {
        match entity {
            Entity::App(app) => {
                let key = Key::app(&app.id);
                Ok(Entity::App(self.open_app(app, &key)?))
            }
            Entity::DomainCertificate(mut c) => {
                if is_sealed(c.private_key.expose()) {
                    let record = Key::domain_certificate(&c.group_id, &c.domain);
                    let plain = match &self.key {
                        Some(key) => {
                            key.open(c.private_key.expose(), &certificate_aad(&c), &record)?
                        }
                        None => {
                            return Err(SealError::KeyMissing {
                                key_id: parse_sealed(c.private_key.expose(), &record)?
                                    .key_id
                                    .to_owned(),
                            });
                        }
                    };
                    c.private_key = Secret::new(plain);
                }
                Ok(Entity::DomainCertificate(c))
            }
            other => Ok(other),
        }
    }

    /// Seals the secret fields of a record that has some (those not sealed yet).
    fn seal_entity(&self, entity: Entity) -> Result<Entity, SealError> {
        match entity {
            Entity::App(app) => Ok(Entity::App(self.seal_app(app)?)),
            Entity::DomainCertificate(mut c) => {
                if let Some(key) = &self.key
                    && !is_sealed(c.private_key.expose())
                {
                    c.private_key =
                        Secret::new(key.seal(c.private_key.expose(), &certificate_aad(&c))?);
                }
                Ok(Entity::DomainCertificate(c))
            }
            other => Ok(other),
        }
    }

    fn open_versioned(&self, v: Versioned<Entity>) -> Result<Versioned<Entity>, SealError> {
        Ok(Versioned {
            value: self.open_entity(v.value)?,
            version: v.version,
        })
    }
}

/// Why [`SealedStore::open`] refused to start.
///
/// # Examples
///
/// ```
/// use stagegate::store::{OpenError, SealError};
/// let e = OpenError::Seal(SealError::InvalidKey);
/// assert!(e.to_string().starts_with("invalid secrets key"), "{e}");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The sealed values cannot be opened with the key given (or without one).
    #[error(transparent)]
    Seal(SealError),
    /// The store could not be read.
    #[error("cannot read the store: {0}")]
    Store(StoreError),
}

impl<S: Store> Store for SealedStore<S> {
    fn load(&self) -> BoxFuture<'_, Result<Loaded, StoreError>> {
        Box::pin(async move {
            let loaded = self.inner.load().await?;
            let records = loaded
                .records
                .into_iter()
                .map(|r| self.open_versioned(r))
                .collect::<Result<_, _>>()?;
            Ok(Loaded {
                revision: loaded.revision,
                records,
            })
        })
    }

    fn get<'a>(
        &'a self,
        key: &'a Key,
    ) -> BoxFuture<'a, Result<Option<Versioned<Entity>>, StoreError>> {
        Box::pin(async move {
            match self.inner.get(key).await? {
                Some(v) => Ok(Some(self.open_versioned(v)?)),
                None => Ok(None),
            }
        })
    }

    fn commit(&self, writes: Vec<Write>) -> BoxFuture<'_, Result<Revision, StoreError>> {
        Box::pin(async move {
            let mut sealed = Vec::with_capacity(writes.len());
            for w in writes {
                sealed.push(match w {
                    Write::Put { entity, expect } => Write::Put {
                        entity: self.seal_entity(entity)?,
                        expect,
                    },
                    other => other,
                });
            }
            self.inner.commit(sealed).await
        })
    }

    fn changes_since(
        &self,
        revision: Revision,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Change>, StoreError>> {
        Box::pin(async move {
            let changes = self.inner.changes_since(revision, limit).await?;
            changes
                .into_iter()
                .map(|c| {
                    Ok(Change {
                        revision: c.revision,
                        key: c.key,
                        value: c.value.map(|v| self.open_versioned(v)).transpose()?,
                    })
                })
                .collect()
        })
    }

    fn revision(&self) -> BoxFuture<'_, Result<Revision, StoreError>> {
        self.inner.revision()
    }

    fn health(&self) -> Result<(), StoreError> {
        self.inner.health()
    }

    fn subscribe(&self) -> Option<tokio::sync::watch::Receiver<Revision>> {
        self.inner.subscribe()
    }

    fn compact_log_before(&self, before: Revision) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.inner.compact_log_before(before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use std::sync::Arc;

    fn key(byte: u8) -> SecretsKey {
        SecretsKey::from_bytes([byte; 32])
    }

    #[test]
    fn keys_parse_from_hex_and_base64_only_at_32_bytes() {
        let hex = "2a".repeat(32);
        let b64 = STANDARD.encode([42u8; 32]);
        let b64url = URL_SAFE_NO_PAD.encode([42u8; 32]);
        let want = key(42);
        for text in [
            hex.as_str(),
            b64.as_str(),
            b64url.as_str(),
            &format!(" {hex}\n"),
        ] {
            assert_eq!(SecretsKey::parse(text).unwrap().id(), want.id(), "{text}");
        }
        for bad in [
            "",
            "2a",
            &"2a".repeat(31),
            &STANDARD.encode([1u8; 31]),
            &"zz".repeat(32),
        ] {
            assert_eq!(SecretsKey::parse(bad).unwrap_err(), SealError::InvalidKey);
        }
        assert_ne!(key(1).id(), key(2).id());
    }

    #[test]
    fn values_round_trip_with_a_fresh_nonce_each_time() {
        let k = key(7);
        let r = Key::app(&crate::model::AppId::generate());
        let a = k.seal("s3cr3t-value", "aad").unwrap();
        let b = k.seal("s3cr3t-value", "aad").unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("sg-sealed:v1:{}:", k.id())));
        assert!(!a.contains("s3cr3t"));
        assert_eq!(k.open(&a, "aad", &r).unwrap(), "s3cr3t-value");
        // another field's associated data does not open it
        assert!(matches!(
            k.open(&a, "other", &r),
            Err(SealError::Damaged { .. })
        ));
        assert!(matches!(
            key(8).open(&a, "aad", &r),
            Err(SealError::WrongKey { .. })
        ));
        assert!(matches!(
            k.open("sg-sealed:v9:x:y", "aad", &r),
            Err(SealError::UnknownFormat { .. })
        ));
    }

    #[test]
    fn debug_never_shows_the_key() {
        let (k, text) = SecretsKey::generate().unwrap();
        let shown = format!("{k:?}");
        assert!(!shown.contains(&text) && shown.contains(k.id()), "{shown}");
        let s = SealedStore {
            inner: MemoryStore::new(),
            key: Some(k),
        };
        assert!(!format!("{s:?}").contains(&text));
    }

    #[tokio::test]
    async fn a_secret_copied_into_another_app_does_not_open() {
        let raw = Arc::new(MemoryStore::new());
        let store = SealedStore::open(Arc::clone(&raw), Some(key(3)))
            .await
            .unwrap();
        let a = App::new("first_app").unwrap();
        let mut b = App::new("second_app").unwrap();
        b.keys[0].app_key = a.keys[0].app_key.clone();
        store
            .commit(vec![
                Write::put(Entity::App(a.clone()), Expect::Absent),
                Write::put(Entity::App(b.clone()), Expect::Absent),
            ])
            .await
            .unwrap();
        let Some(Versioned {
            value: Entity::App(sealed_a),
            ..
        }) = raw.get(&Key::app(&a.id)).await.unwrap()
        else {
            panic!()
        };
        let Some(Versioned {
            value: Entity::App(mut sealed_b),
            version,
        }) = raw.get(&Key::app(&b.id)).await.unwrap()
        else {
            panic!()
        };
        sealed_b.keys[0].app_secret = sealed_a.keys[0].app_secret.clone();
        raw.commit(vec![Write::put(
            Entity::App(sealed_b),
            Expect::Version(version),
        )])
        .await
        .unwrap();
        let err = store.get(&Key::app(&b.id)).await.unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains(&b.id.to_string()), "{err}");
    }
}
