//! [`AccessKeys`]: the access key pairs (`AccessKeyId` / `AccessKeySecret`) CloudAPI calls are
//! signed with.
//!
//! Pairs are given at start (`--access-key ID:SECRET`, `STAGEGATE_ACCESS_KEYS`), or created
//! through the admin API (`POST /access-keys`, the secret is in that one response only) and
//! removed there (`DELETE /access-keys/{id}`): rotate by creating a second pair, moving the
//! scripts to it, then deleting the first. With [`AccessKeys::persisted`] the pairs created and
//! removed at run time are kept in a file (mode 0600) and survive a restart.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::model::Secret;

/// Why an access key pair was refused.
///
/// # Examples
///
/// ```
/// use stagegate::cloudapi::AccessKeys;
/// let e = AccessKeys::parse_pair("no-colon").unwrap_err();
/// assert!(e.to_string().contains("ID:SECRET"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccessKeyError {
    /// The `ID:SECRET` text is malformed.
    #[error("access key: {0}")]
    Invalid(String),
    /// The id is already in use.
    #[error("access key id `{0}` already exists")]
    Exists(String),
    /// The key file cannot be read or written.
    #[error("access key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
}

/// A pair's secret, and whether it is kept in the key file (pairs given at start are not).
#[derive(Clone)]
struct Entry {
    secret: Secret,
    saved: bool,
}

/// A shared, thread-safe set of access key pairs. Cloning shares the set.
///
/// `Debug` shows the ids only, never a secret.
///
/// # Examples
///
/// ```
/// use stagegate::cloudapi::AccessKeys;
/// let keys = AccessKeys::new();
/// keys.insert_pair("LTAIexample01", "a-long-enough-secret").unwrap();
/// let (id, secret) = keys.create().unwrap();
/// assert!(id.starts_with("LTAI") && secret.expose().len() == 30);
/// assert_eq!(keys.ids().len(), 2);
/// assert!(!format!("{keys:?}").contains("a-long-enough-secret"));
/// assert!(keys.remove(&id).unwrap());
/// ```
#[derive(Clone, Default)]
pub struct AccessKeys {
    inner: Arc<RwLock<BTreeMap<String, Entry>>>,
    file: Option<Arc<PathBuf>>,
}

impl fmt::Debug for AccessKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessKeys")
            .field("ids", &self.ids())
            .field("file", &self.file)
            .finish()
    }
}

fn validate_id(id: &str) -> Result<(), AccessKeyError> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(AccessKeyError::Invalid(
            "the id must be 1 to 64 of letters, digits, `-`, `_`, `.`".into(),
        ));
    }
    Ok(())
}

fn validate_secret(s: &str) -> Result<(), AccessKeyError> {
    if s.len() < 16 || s.len() > 128 || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(AccessKeyError::Invalid(
            "the secret must be 16 to 128 printable ASCII characters without spaces".into(),
        ));
    }
    Ok(())
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

fn random_alnum(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    // 62 symbols: the rejection of bytes >= 248 keeps every symbol equally likely
    let mut out = String::with_capacity(n);
    let mut i = 0;
    while out.len() < n {
        if i == bytes.len() {
            getrandom::fill(&mut bytes).expect("the operating system's random source failed");
            i = 0;
        }
        let b = bytes[i];
        i += 1;
        if b < 248 {
            out.push(ALNUM[usize::from(b % 62)] as char);
        }
    }
    out
}

impl AccessKeys {
    /// An empty set, kept in memory only.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A set kept in `path`: the pairs already there are loaded, and every later
    /// [`create`](Self::create), [`insert_pair`](Self::insert_pair) or [`remove`](Self::remove)
    /// rewrites the file (one `ID:SECRET` a line, mode 0600 on Unix).
    ///
    /// # Errors
    ///
    /// [`AccessKeyError::Io`] when the file exists but cannot be read,
    /// [`AccessKeyError::Invalid`] for a malformed line.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::cloudapi::AccessKeys;
    /// let path = std::env::temp_dir().join(format!("ak-doc-{}", std::process::id()));
    /// let keys = AccessKeys::persisted(&path).unwrap();
    /// let (id, _) = keys.create().unwrap();
    /// assert_eq!(AccessKeys::persisted(&path).unwrap().ids(), vec![id]);
    /// std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn persisted(path: impl Into<PathBuf>) -> Result<Self, AccessKeyError> {
        let path = path.into();
        let keys = Self {
            inner: Arc::default(),
            file: Some(Arc::new(path.clone())),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let mut map = keys.inner.write();
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    let (id, secret) = Self::parse_pair(line.trim())?;
                    map.insert(
                        id,
                        Entry {
                            secret,
                            saved: true,
                        },
                    );
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(AccessKeyError::Io { path, source }),
        }
        Ok(keys)
    }

    /// Parses `ID:SECRET` (as given to `--access-key`).
    ///
    /// # Errors
    ///
    /// [`AccessKeyError::Invalid`] naming what is wrong (never quoting the secret).
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::cloudapi::AccessKeys;
    /// let (id, secret) = AccessKeys::parse_pair("LTAIexample01:a-long-enough-secret").unwrap();
    /// assert_eq!((id.as_str(), secret.expose()), ("LTAIexample01", "a-long-enough-secret"));
    /// ```
    pub fn parse_pair(text: &str) -> Result<(String, Secret), AccessKeyError> {
        let Some((id, secret)) = text.split_once(':') else {
            return Err(AccessKeyError::Invalid(
                "expected ID:SECRET (a colon between the id and the secret)".into(),
            ));
        };
        validate_id(id)?;
        validate_secret(secret)?;
        Ok((id.to_owned(), Secret::new(secret)))
    }

    /// Parses a comma-separated list of `ID:SECRET` pairs (as in `STAGEGATE_ACCESS_KEYS`) into
    /// a new in-memory set.
    ///
    /// # Errors
    ///
    /// The first malformed pair, or an id given twice.
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::cloudapi::AccessKeys;
    /// let keys = AccessKeys::parse_list("AK1:0123456789abcdef, AK2:fedcba9876543210").unwrap();
    /// assert_eq!(keys.ids(), vec!["AK1", "AK2"]);
    /// assert!(AccessKeys::parse_list("AK1:0123456789abcdef,AK1:0123456789abcdef").is_err());
    /// ```
    pub fn parse_list(text: &str) -> Result<Self, AccessKeyError> {
        let keys = Self::new();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (id, secret) = Self::parse_pair(pair)?;
            keys.insert(id, secret)?;
        }
        Ok(keys)
    }

    /// Adds a pair given as text fields.
    ///
    /// # Errors
    ///
    /// [`AccessKeyError::Invalid`] or [`AccessKeyError::Exists`]; nothing is added then.
    pub fn insert_pair(&self, id: &str, secret: &str) -> Result<(), AccessKeyError> {
        validate_id(id)?;
        validate_secret(secret)?;
        self.insert(id.to_owned(), Secret::new(secret))
    }

    /// Adds a pair.
    ///
    /// # Errors
    ///
    /// [`AccessKeyError::Exists`] when the id is taken; [`AccessKeyError::Io`] when the key
    /// file cannot be written (the pair is not added then).
    pub fn insert(&self, id: String, secret: Secret) -> Result<(), AccessKeyError> {
        self.insert_entry(id, secret, true)
    }

    /// Adds a pair given at start (a flag or the environment): it is never written to the
    /// key file of a [`persisted`](Self::persisted) set.
    ///
    /// # Errors
    ///
    /// [`AccessKeyError::Invalid`] for a malformed id, [`AccessKeyError::Exists`] when the id
    /// is taken (also by a pair in the key file).
    ///
    /// # Examples
    ///
    /// ```
    /// use stagegate::cloudapi::AccessKeys;
    /// let keys = AccessKeys::new();
    /// let (id, secret) = AccessKeys::parse_pair("LTAIexample01:a-long-enough-secret").unwrap();
    /// keys.insert_static(id, secret).unwrap();
    /// assert_eq!(keys.ids(), vec!["LTAIexample01"]);
    /// ```
    pub fn insert_static(&self, id: String, secret: Secret) -> Result<(), AccessKeyError> {
        self.insert_entry(id, secret, false)
    }

    fn insert_entry(&self, id: String, secret: Secret, saved: bool) -> Result<(), AccessKeyError> {
        validate_id(&id)?;
        let mut map = self.inner.write();
        if map.contains_key(&id) {
            return Err(AccessKeyError::Exists(id));
        }
        map.insert(id.clone(), Entry { secret, saved });
        if let Err(e) = self.save(&map) {
            map.remove(&id);
            return Err(e);
        }
        Ok(())
    }

    /// Creates a pair: an id `LTAI` + 20 letters and digits, a 30-character secret. The secret
    /// is returned here only; nothing reads it back later.
    ///
    /// # Errors
    ///
    /// [`AccessKeyError::Io`] when the key file cannot be written.
    pub fn create(&self) -> Result<(String, Secret), AccessKeyError> {
        loop {
            let id = format!("LTAI{}", random_alnum(20));
            let secret = Secret::new(random_alnum(30));
            match self.insert(id.clone(), secret.clone()) {
                Ok(()) => return Ok((id, secret)),
                Err(AccessKeyError::Exists(_)) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Removes a pair; returns whether it existed. Calls signed with it are refused from now on.
    ///
    /// # Errors
    ///
    /// [`AccessKeyError::Io`] when the key file cannot be written (the pair stays then).
    pub fn remove(&self, id: &str) -> Result<bool, AccessKeyError> {
        let mut map = self.inner.write();
        let Some(entry) = map.remove(id) else {
            return Ok(false);
        };
        if let Err(e) = self.save(&map) {
            map.insert(id.to_owned(), entry);
            return Err(e);
        }
        Ok(true)
    }

    /// The ids, sorted.
    #[must_use]
    pub fn ids(&self) -> Vec<String> {
        self.inner.read().keys().cloned().collect()
    }

    /// Whether no pair is configured.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.inner.read().is_empty()
    }

    pub(crate) fn secret(&self, id: &str) -> Option<Secret> {
        self.inner.read().get(id).map(|e| e.secret.clone())
    }

    fn save(&self, map: &BTreeMap<String, Entry>) -> Result<(), AccessKeyError> {
        let Some(path) = &self.file else {
            return Ok(());
        };
        let mut text = String::new();
        for (id, entry) in map.iter().filter(|(_, e)| e.saved) {
            text.push_str(id);
            text.push(':');
            text.push_str(entry.secret.expose());
            text.push('\n');
        }
        let io = |source| AccessKeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        let tmp = path.with_extension("tmp");
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        {
            use std::io::Write as _;
            let mut f = opts.open(&tmp).map_err(io)?;
            f.write_all(text.as_bytes()).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, path.as_path()).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_pairs_are_refused_without_quoting_the_secret() {
        for bad in [
            "",
            "id",
            ":0123456789abcdef",
            "id:short",
            "i d:0123456789abcdef",
        ] {
            let e = AccessKeys::parse_pair(bad).unwrap_err().to_string();
            assert!(!e.contains("0123456789abcdef"), "{e}");
        }
        let keys = AccessKeys::new();
        assert!(keys.insert_pair("bad id", "0123456789abcdef").is_err());
        assert!(keys.is_empty());
    }

    #[test]
    fn created_ids_are_unique_and_the_secret_looks_up() {
        let keys = AccessKeys::new();
        let (a, sa) = keys.create().unwrap();
        let (b, _) = keys.create().unwrap();
        assert_ne!(a, b);
        assert_eq!(keys.secret(&a).unwrap().expose(), sa.expose());
        assert!(!keys.remove("nope").unwrap());
    }
}
