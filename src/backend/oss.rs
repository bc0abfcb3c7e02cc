//! OSS backends: GetObject, HeadObject, PutObject and DeleteObject against an
//! [`object_store::ObjectStore`] chosen per bucket by an [`ObjectStores`] provider.
//!
//! The API names the action and the object key (`backend.oss`, `[param]` placeholders filled
//! from path parameters, then query parameters, percent-decoded); the stage definition names the
//! bucket and the permissions the bucket's owner granted: `read` for Get/Head, `write` for
//! Put/Delete. A call without the permission is refused with `A403OP` before the store is
//! touched; because the permissions live in the definition, revoking one re-points the published
//! APIs and takes effect on the next call.
//!
//! Answers are the bucket's, not the gateway's: a missing object is a plain `404` with a JSON
//! body `{"code":"NoSuchKey",...}` and **no** `X-Ca-Error-Code`, as an HTTP backend's 404
//! would be; DeleteObject answers `204` whether or not the object existed (as OSS does).
//! Objects stream both ways: GetObject streams the store's chunks; PutObject buffers at most
//! one 5 MiB part (and a bounded number of parts in flight) before writing.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::TryStreamExt as _;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::BodyExt as _;
use object_store::path::Path as ObjectPath;
use object_store::{
    Attribute, AttributeValue, Attributes, ObjectMeta, ObjectStore, ObjectStoreExt as _,
    PutMultipartOptions, PutOptions, PutPayload, WriteMultipart,
};
use parking_lot::Mutex;

use super::{BackendCall, body_error};
use crate::error::GatewayError;
use crate::error_code::{ErrorCode, WireError};
use crate::model::{OssAction, OssDefinition};
use crate::proxy::{BodyError, BoxError, GatewayBody};

/// The size of one PutObject part: bodies up to this size are written with one `put`.
const PART: usize = 5 * 1024 * 1024;
/// Parts of one PutObject in flight at most.
const PARTS_IN_FLIGHT: usize = 2;

/// Why an OSS call failed.
///
/// | variant | code | status |
/// |---|---|---|
/// | [`PermissionDenied`](Self::PermissionDenied) | `A403OP` | 403 |
/// | [`InvalidKey`](Self::InvalidKey) | `I400PA` | 400 |
/// | [`OutsideBucket`](Self::OutsideBucket) | `A403OP` | 403 |
/// | [`NoStore`](Self::NoStore) | `D502OS` | 502 |
/// | [`Store`](Self::Store) | `D502OS` (`I400PA` for a name the file system refuses as too long) | 502 (400) |
///
/// Logs never show a local file system path: a store error is logged by its I/O cause.
///
/// # Examples
///
/// ```
/// use stagegate::backend::OssError;
/// use stagegate::model::OssAction;
/// let e = OssError::PermissionDenied { action: OssAction::PutObject, bucket: "assets".into() };
/// assert_eq!(e.to_string(), "the gateway has no write permission on bucket `assets` (PutObject)");
/// let g = stagegate::GatewayError::from(e);
/// assert_eq!(g.error_code(), stagegate::ErrorCode::A403OP);
/// assert_eq!(g.message(), "OSS access denied: the gateway has no write permission (PutObject)");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OssError {
    /// The definition does not grant the permission the action needs.
    #[error("the gateway has no {} permission on bucket `{bucket}` ({action:?})", if action.writes() { "write" } else { "read" })]
    PermissionDenied {
        /// The action.
        action: OssAction,
        /// The bucket.
        bucket: String,
    },
    /// The object key is not acceptable (empty, `..`, longer than 1023 bytes, a missing
    /// parameter).
    #[error("invalid object key: {0}")]
    InvalidKey(String),
    /// The object key leads through a symbolic link (or the bucket is one): the provider does
    /// not follow links, so a call can never reach outside its bucket.
    #[error("the object key leads out of bucket `{bucket}`")]
    OutsideBucket {
        /// The bucket.
        bucket: String,
    },
    /// The provider has no store for the definition.
    #[error("no object store for bucket `{bucket}`: {reason}")]
    NoStore {
        /// The bucket.
        bucket: String,
        /// Why.
        reason: String,
    },
    /// The store failed.
    #[error("object store failed")]
    Store(#[from] object_store::Error),
}

/// Bucket names, the provider's reasons and the store's own errors (which name file system
/// paths) never reach the wire: the detail is the object key's problem (`I400PA`) or the
/// permission and action that were refused (`A403OP`).
impl WireError for OssError {
    fn wire_code(&self) -> ErrorCode {
        match self {
            Self::PermissionDenied { .. } | Self::OutsideBucket { .. } => ErrorCode::A403OP,
            Self::InvalidKey(_) => ErrorCode::I400PA,
            Self::NoStore { .. } => ErrorCode::D502OS,
            Self::Store(source) => {
                if redacted(source).1 == Some(std::io::ErrorKind::InvalidFilename) {
                    ErrorCode::I400PA
                } else {
                    ErrorCode::D502OS
                }
            }
        }
    }

    fn wire_detail(&self) -> Option<Cow<'_, str>> {
        match self {
            Self::PermissionDenied { action, .. } => Some(Cow::Owned(format!(
                "the gateway has no {} permission ({action:?})",
                if action.writes() { "write" } else { "read" }
            ))),
            Self::InvalidKey(reason) => Some(Cow::Borrowed(reason)),
            Self::Store(_) => Some(Cow::Borrowed(
                "the object key has a segment that is too long",
            )),
            Self::OutsideBucket { .. } | Self::NoStore { .. } => None,
        }
    }

    /// The store's own error redacted: it names file system paths.
    fn internal_detail(&self) -> String {
        match self {
            Self::Store(source) => redacted(source).0,
            other => other.to_string(),
        }
    }
}

/// A key or bucket that leads through a symbolic link: refused, and worth a warning.
fn outside_bucket(bucket: &str) -> OssError {
    tracing::warn!(bucket, "OSS call refused: a symbolic link in the bucket");
    OssError::OutsideBucket {
        bucket: bucket.to_owned(),
    }
}

/// The longest object key accepted, in bytes (OSS's own limit).
const MAX_KEY_BYTES: usize = 1023;

/// A store error's description without any local file system path, and its I/O kind: the first
/// I/O error in the chain (whose text is the OS's, without a path), else the error itself for
/// remote stores, else only that the local store failed.
fn redacted(e: &object_store::Error) -> (String, Option<std::io::ErrorKind>) {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return (format!("I/O error: {io}"), Some(io.kind()));
        }
        cur = err.source();
    }
    match e {
        object_store::Error::Generic { store, .. } if *store != "LocalFileSystem" => {
            (e.to_string(), None)
        }
        _ => ("the local object store failed".to_owned(), None),
    }
}

/// Provides the object store of a bucket (and endpoint).
///
/// # Examples
///
/// An in-memory store for every bucket:
///
/// ```
/// use std::sync::Arc;
/// use object_store::{ObjectStore, memory::InMemory};
/// use stagegate::model::OssDefinition;
/// use stagegate::backend::{ObjectStores, OssError};
///
/// #[derive(Debug)]
/// struct Memory(Arc<InMemory>);
/// impl ObjectStores for Memory {
///     fn store(&self, _def: &OssDefinition) -> Result<Arc<dyn ObjectStore>, OssError> {
///         Ok(self.0.clone())
///     }
/// }
/// ```
pub trait ObjectStores: Send + Sync + 'static {
    /// The store holding `def.bucket`, with keys relative to the bucket.
    ///
    /// # Errors
    ///
    /// [`OssError::NoStore`] when the provider cannot serve the definition.
    fn store(&self, def: &OssDefinition) -> Result<Arc<dyn ObjectStore>, OssError>;

    /// Whether stores keep the Content-Type given on PutObject (default: no; the type is then
    /// guessed from the key's extension).
    fn keeps_content_type(&self) -> bool {
        false
    }

    /// Checked before every call: that `key` stays inside the bucket (default: nothing to
    /// check, as for remote stores). [`LocalObjectStores`] refuses a key that goes through a
    /// symbolic link.
    ///
    /// # Errors
    ///
    /// [`OssError::OutsideBucket`] (or [`OssError::NoStore`]) to refuse the call.
    fn confine(&self, def: &OssDefinition, key: &ObjectPath) -> Result<(), OssError> {
        let _ = (def, key);
        Ok(())
    }
}

/// The default provider: one local directory per bucket under a root (created on first use).
/// Definitions that name an `endpoint` are refused (enable the `oss-s3` feature for those).
///
/// Confinement: the root and the bucket directories are created owner-only (`0700` on Unix); a
/// bucket directory that is a symbolic link, or that other users may write, is refused
/// (`D502OS`); an object key that goes through a symbolic link inside the bucket (a linked
/// directory or file) is refused with `A403OP` for every action, so no call reads, writes or
/// deletes outside the bucket. Keep the root out of directories other users can write (the
/// example gateway uses `<data-dir>/oss`). The checks run before each call (one `lstat` per
/// key segment) and catch links that exist at that moment. Because the directories are
/// owner-only, no other user can plant a link between the check and the call.
///
/// # Examples
///
/// ```
/// use stagegate::backend::{Backends, LocalObjectStores};
/// let backends = Backends::new().with_object_stores(LocalObjectStores::new("/var/lib/my-gateway/buckets"));
/// # let _ = backends;
/// ```
#[derive(Debug)]
pub struct LocalObjectStores {
    root: PathBuf,
    stores: Mutex<HashMap<String, Arc<dyn ObjectStore>>>,
}

impl LocalObjectStores {
    /// Buckets are directories under `root`.
    #[must_use]
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            stores: Mutex::new(HashMap::new()),
        }
    }
}

impl ObjectStores for LocalObjectStores {
    fn store(&self, def: &OssDefinition) -> Result<Arc<dyn ObjectStore>, OssError> {
        if def.endpoint.is_some() {
            return Err(OssError::NoStore {
                bucket: def.bucket.clone(),
                reason: "endpoints need an S3-compatible provider".to_owned(),
            });
        }
        let mut stores = self.stores.lock();
        if let Some(s) = stores.get(&def.bucket) {
            return Ok(Arc::clone(s));
        }
        // Bucket names are validated (lowercase letters, digits, `-`): safe as a directory name.
        let dir = self.root.join(&def.bucket);
        owner_only_dir(&dir).map_err(|e| OssError::NoStore {
            bucket: def.bucket.clone(),
            reason: format!("directory could not be created: {e}"),
        })?;
        self.check_bucket_dir(&def.bucket)?;
        let store: Arc<dyn ObjectStore> = Arc::new(
            object_store::local::LocalFileSystem::new_with_prefix(&dir)?
                .with_automatic_cleanup(true),
        );
        stores.insert(def.bucket.clone(), Arc::clone(&store));
        Ok(store)
    }

    fn confine(&self, def: &OssDefinition, key: &ObjectPath) -> Result<(), OssError> {
        // A link planted (or swapped in) after the store was made is caught here too.
        let mut path = self.check_bucket_dir(&def.bucket)?;
        for part in key.parts() {
            path.push(part.as_ref());
            match std::fs::symlink_metadata(&path) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(outside_bucket(&def.bucket));
                }
                Ok(_) => {}
                // Nothing further exists: a PutObject creates real directories from here on.
                Err(_) => break,
            }
        }
        Ok(())
    }
}

impl LocalObjectStores {
    /// The bucket's directory, if it is a real directory that only its owner may write.
    fn check_bucket_dir(&self, bucket: &str) -> Result<PathBuf, OssError> {
        let dir = self.root.join(bucket);
        let refuse = |reason: &str| OssError::NoStore {
            bucket: bucket.to_owned(),
            reason: reason.to_owned(),
        };
        let meta = std::fs::symlink_metadata(&dir)
            .map_err(|e| refuse(&format!("directory is not accessible: {e}")))?;
        if meta.file_type().is_symlink() {
            return Err(outside_bucket(bucket));
        }
        if !meta.is_dir() {
            return Err(refuse("not a directory"));
        }
        #[cfg(unix)]
        if std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o022 != 0 {
            return Err(refuse("the bucket directory is writable by other users"));
        }
        Ok(dir)
    }
}

/// Creates `dir` and its missing parents owner-only (`0700` on Unix).
fn owner_only_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

/// S3-compatible buckets (Alibaba OSS speaks the S3 protocol): one store per (endpoint, bucket),
/// with the definition's endpoint or a default one (feature `oss-s3`).
///
/// # Examples
///
/// ```
/// use stagegate::backend::{Backends, S3ObjectStores};
/// let stores = S3ObjectStores::new("AK", "SK")
///     .with_default_endpoint("https://oss-cn-hangzhou.aliyuncs.com")
///     .with_region("oss-cn-hangzhou");
/// let backends = Backends::new().with_object_stores(stores);
/// # let _ = backends;
/// ```
#[cfg(feature = "oss-s3")]
#[derive(Debug)]
pub struct S3ObjectStores {
    access_key_id: String,
    secret_access_key: crate::model::Secret,
    default_endpoint: Option<String>,
    region: String,
    virtual_hosted: bool,
    stores: Mutex<HashMap<S3Key, Arc<dyn ObjectStore>>>,
}

/// (endpoint, bucket).
#[cfg(feature = "oss-s3")]
type S3Key = (Option<String>, String);

#[cfg(feature = "oss-s3")]
impl S3ObjectStores {
    /// Stores signing with these credentials.
    #[must_use]
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            secret_access_key: crate::model::Secret::new(secret_access_key.into()),
            default_endpoint: None,
            region: "us-east-1".to_owned(),
            virtual_hosted: false,
            stores: Mutex::new(HashMap::new()),
        }
    }

    /// The endpoint for definitions without one.
    #[must_use]
    pub fn with_default_endpoint(mut self, url: impl Into<String>) -> Self {
        self.default_endpoint = Some(url.into());
        self
    }

    /// The signing region for definitions without one.
    #[must_use]
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = region.into();
        self
    }

    /// Use virtual-hosted-style requests (`bucket.endpoint`, what OSS requires).
    #[must_use]
    pub fn with_virtual_hosted(mut self, yes: bool) -> Self {
        self.virtual_hosted = yes;
        self
    }
}

#[cfg(feature = "oss-s3")]
impl ObjectStores for S3ObjectStores {
    fn store(&self, def: &OssDefinition) -> Result<Arc<dyn ObjectStore>, OssError> {
        let endpoint = def
            .endpoint
            .clone()
            .or_else(|| self.default_endpoint.clone());
        let key = (endpoint.clone(), def.bucket.clone());
        let mut stores = self.stores.lock();
        if let Some(s) = stores.get(&key) {
            return Ok(Arc::clone(s));
        }
        let mut b = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(&def.bucket)
            .with_region(def.region.as_deref().unwrap_or(&self.region))
            .with_access_key_id(&self.access_key_id)
            .with_secret_access_key(self.secret_access_key.expose())
            .with_virtual_hosted_style_request(self.virtual_hosted);
        if let Some(e) = &endpoint {
            b = b.with_endpoint(e).with_allow_http(e.starts_with("http://"));
        }
        let store: Arc<dyn ObjectStore> = Arc::new(b.build()?);
        stores.insert(key, Arc::clone(&store));
        Ok(store)
    }

    fn keeps_content_type(&self) -> bool {
        true
    }
}

/// Fills `[param]` placeholders and checks the key.
fn object_key(template: &str, call: &BackendCall<'_>) -> Result<ObjectPath, OssError> {
    let mut key = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('[') {
        key.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let end = after
            .find(']')
            .ok_or_else(|| OssError::InvalidKey("unclosed `[` in the key template".to_owned()))?;
        let name = &after[..end];
        let raw = call
            .path_params
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
            .or_else(|| {
                form_urlencoded::parse(call.parts.uri.query().unwrap_or("").as_bytes())
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| {
                        percent_encoding::utf8_percent_encode(
                            &v,
                            percent_encoding::NON_ALPHANUMERIC,
                        )
                        .to_string()
                    })
            })
            .ok_or_else(|| OssError::InvalidKey(format!("no value for `{name}`")))?;
        let value = percent_encoding::percent_decode_str(&raw)
            .decode_utf8()
            .map_err(|_| OssError::InvalidKey(format!("`{name}` is not UTF-8")))?;
        key.push_str(&value);
        rest = &after[end + 1..];
    }
    key.push_str(rest);
    let key = key.trim_start_matches('/');
    if key.is_empty() {
        return Err(OssError::InvalidKey("empty key".to_owned()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(OssError::InvalidKey(format!(
            "longer than {MAX_KEY_BYTES} bytes"
        )));
    }
    if key
        .split(['/', '\\'])
        .any(|s| s == ".." || s == "." || s.is_empty())
        || key.chars().any(char::is_control)
    {
        return Err(OssError::InvalidKey(
            "`.`, `..` and empty segments are not allowed".to_owned(),
        ));
    }
    ObjectPath::parse(key).map_err(|e| OssError::InvalidKey(e.to_string()))
}

/// A Content-Type from the key's extension.
fn guess_content_type(key: &str) -> &'static str {
    let ext = key.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("json") => "application/json",
        Some("txt" | "log") => "text/plain; charset=utf-8",
        Some("csv") => "text/csv; charset=utf-8",
        Some("xml") => "application/xml",
        Some("md") => "text/markdown; charset=utf-8",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("svg") => "image/svg+xml",
        Some("webp") => "image/webp",
        Some("ico") => "image/x-icon",
        Some("pdf") => "application/pdf",
        Some("zip") => "application/zip",
        Some("gz" | "tgz") => "application/gzip",
        Some("wasm") => "application/wasm",
        Some("mp4") => "video/mp4",
        Some("mp3") => "audio/mpeg",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

fn quoted_etag(e: &str) -> Option<HeaderValue> {
    if e.starts_with('"') || e.starts_with("W/") {
        HeaderValue::from_str(e).ok()
    } else {
        HeaderValue::from_str(&format!("\"{e}\"")).ok()
    }
}

fn http_date(meta: &ObjectMeta) -> Option<HeaderValue> {
    let ts = jiff::Timestamp::from_second(meta.last_modified.timestamp()).ok()?;
    HeaderValue::from_str(&ts.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string()).ok()
}

fn object_headers(
    res: &mut Response<GatewayBody>,
    meta: &ObjectMeta,
    attributes: &Attributes,
    key: &str,
) {
    let h = res.headers_mut();
    let ct = attributes
        .get(&Attribute::ContentType)
        .and_then(|v| HeaderValue::from_str(v.as_ref()).ok())
        .unwrap_or_else(|| HeaderValue::from_static(guess_content_type(key)));
    h.insert(header::CONTENT_TYPE, ct);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(meta.size));
    if let Some(e) = meta.e_tag.as_deref().and_then(quoted_etag) {
        h.insert(header::ETAG, e);
    }
    if let Some(d) = http_date(meta) {
        h.insert(header::LAST_MODIFIED, d);
    }
}

fn no_such_key(key: &str) -> Response<GatewayBody> {
    let body = serde_json::json!({
        "code": "NoSuchKey",
        "message": "The specified key does not exist",
        "key": key,
    });
    let mut res = Response::new(GatewayBody::full(body.to_string()));
    *res.status_mut() = StatusCode::NOT_FOUND;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

pub(super) async fn dispatch(
    stores: &dyn ObjectStores,
    def: &OssDefinition,
    call: BackendCall<'_>,
) -> Result<Response<GatewayBody>, GatewayError> {
    let Some(binding) = call.route.api().backend.oss.clone() else {
        tracing::warn!("OSS route without the API's backend.oss");
        return Err(GatewayError::internal());
    };
    let action = binding.action;
    let allowed = if action.writes() {
        def.permissions.write
    } else {
        def.permissions.read
    };
    if !allowed {
        return Err(OssError::PermissionDenied {
            action,
            bucket: def.bucket.clone(),
        }
        .into());
    }
    let path = object_key(&binding.key, &call)?;
    let store = stores.store(def)?;
    stores.confine(def, &path)?;
    let key = path.as_ref().to_owned();
    match action {
        OssAction::GetObject => match store.get(&path).await {
            Ok(got) => {
                let meta = got.meta.clone();
                let attributes = got.attributes.clone();
                let stream = got
                    .into_stream()
                    .map_ok(http_body::Frame::data)
                    .map_err(|e| -> BoxError { Box::new(e) });
                let mut res =
                    Response::new(GatewayBody::new(http_body_util::StreamBody::new(stream)));
                object_headers(&mut res, &meta, &attributes, &key);
                Ok(res)
            }
            Err(object_store::Error::NotFound { .. }) => Ok(no_such_key(&key)),
            Err(e) => Err(OssError::Store(e).into()),
        },
        OssAction::HeadObject => match store.head(&path).await {
            Ok(meta) => {
                let mut res = Response::new(GatewayBody::empty());
                object_headers(&mut res, &meta, &Attributes::new(), &key);
                Ok(res)
            }
            Err(object_store::Error::NotFound { .. }) => {
                let mut res = no_such_key(&key);
                *res.body_mut() = GatewayBody::empty();
                res.headers_mut().remove(header::CONTENT_TYPE);
                Ok(res)
            }
            Err(e) => Err(OssError::Store(e).into()),
        },
        OssAction::DeleteObject => match store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                let mut res = Response::new(GatewayBody::empty());
                *res.status_mut() = StatusCode::NO_CONTENT;
                Ok(res)
            }
            Err(e) => Err(OssError::Store(e).into()),
        },
        OssAction::PutObject => {
            let mut attributes = Attributes::new();
            if stores.keeps_content_type()
                && let Some(ct) = call
                    .parts
                    .headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
            {
                attributes.insert(Attribute::ContentType, AttributeValue::from(ct.to_owned()));
            }
            let e_tag = put_object(&*store, &path, call.body, attributes).await?;
            let mut res = Response::new(GatewayBody::empty());
            if let Some(e) = e_tag.as_deref().and_then(quoted_etag) {
                res.headers_mut().insert(header::ETAG, e);
            }
            Ok(res)
        }
    }
}

/// Streams `body` into the store: one `put` for bodies up to one part, a multipart upload with
/// a bounded number of parts in flight beyond.
async fn put_object(
    store: &dyn ObjectStore,
    path: &ObjectPath,
    mut body: GatewayBody,
    attributes: Attributes,
) -> Result<Option<String>, GatewayError> {
    let mut first = BytesMut::new();
    let mut ended = false;
    while first.len() < PART {
        match next_chunk(&mut body).await? {
            Some(c) => first.extend_from_slice(&c),
            None => {
                ended = true;
                break;
            }
        }
    }
    if ended {
        let opts = PutOptions {
            attributes,
            ..Default::default()
        };
        let r = store
            .put_opts(path, PutPayload::from(first.freeze()), opts)
            .await
            .map_err(OssError::Store)?;
        return Ok(r.e_tag);
    }
    let opts = PutMultipartOptions {
        attributes,
        ..Default::default()
    };
    let upload = store
        .put_multipart_opts(path, opts)
        .await
        .map_err(OssError::Store)?;
    let mut w = WriteMultipart::new_with_chunk_size(upload, PART);
    w.put(first.freeze());
    loop {
        if let Err(e) = w.wait_for_capacity(PARTS_IN_FLIGHT).await {
            let _ = w.abort().await;
            return Err(OssError::Store(e).into());
        }
        match next_chunk(&mut body).await {
            Ok(Some(c)) => w.put(c),
            Ok(None) => break,
            Err(e) => {
                let _ = w.abort().await;
                return Err(e);
            }
        }
    }
    let r = w.finish().await.map_err(OssError::Store)?;
    Ok(r.e_tag)
}

async fn next_chunk(body: &mut GatewayBody) -> Result<Option<Bytes>, GatewayError> {
    loop {
        match body.frame().await {
            None => return Ok(None),
            Some(Err(e)) => return Err(body_error(&BodyError::Stream(e))),
            Some(Ok(f)) => {
                if let Ok(d) = f.into_data()
                    && !d.is_empty()
                {
                    return Ok(Some(d));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{OssError, guess_content_type, redacted};
    use object_store::ObjectStoreExt as _;

    /// Issue 20 item 16: what is logged for a local store's failure never holds the file
    /// system path, and a name the file system refuses as too long is the caller's 400.
    #[tokio::test]
    async fn local_store_errors_are_logged_without_paths() {
        let dir = std::env::temp_dir().join(format!("stagegate-oss-redact-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = object_store::local::LocalFileSystem::new_with_prefix(&dir).unwrap();
        let long = object_store::path::Path::from("s".repeat(300));
        let e = store
            .put(&long, bytes::Bytes::from_static(b"x").into())
            .await
            .unwrap_err();
        let root = dir.canonicalize().unwrap();
        assert!(
            e.to_string().contains(&*root.to_string_lossy()),
            "the store's own message names the path: {e}"
        );
        let (logged, kind) = redacted(&e);
        assert!(!logged.contains(&*root.to_string_lossy()), "{logged}");
        assert!(!logged.contains("sss"), "{logged}");
        assert_eq!(kind, Some(std::io::ErrorKind::InvalidFilename));
        let g = crate::GatewayError::from(OssError::Store(e));
        assert_eq!(
            (g.code(), g.status().as_u16()),
            (crate::ErrorCode::I400PA.as_str(), 400)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(guess_content_type("a/b.JSON"), "application/json");
        assert_eq!(guess_content_type("noext"), "application/octet-stream");
        assert_eq!(guess_content_type("x.png"), "image/png");
    }
}
