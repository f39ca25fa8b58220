//! The key file: every key the server holds, outside the database (a copy of the database, or a
//! backup of it, reveals none). It holds the token-signing keys, the keyed hashes' keys (caller
//! numbers, caller networks, login names), the audit log's key and the data keys that seal
//! free-text and identifying columns ([`super::sealed`]), each with a key id.
//!
//! Where it is: `--key-file` / `HELPLINE_KEY_FILE`; for an SQLite database without one, beside the
//! database file (`helpline.db` → `helpline.db.keys`), created on first start, mode 0600. A
//! PostgreSQL node must be given one (the same file on every node: the server refuses to start
//! without). The database keeps, for each key, a keyed check of it (`key_checks`: HMAC of a constant
//! under the key, which reveals nothing of it), so a wrong or lost key file is refused at start with
//! a clear error instead of sealing new rows with another key.
//!
//! Rotation (`helpline keys rotate`): a new data key and a new signing key are added with new ids; the
//! newest seals and signs, the older ones still open old rows and verify tokens until they expire.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// The names of the keyed hashes' keys a new key file holds (they were `server_secrets` rows before).
pub const HMAC_KEY_NAMES: [&str; 3] = ["caller_number_hmac", "caller_address_hmac", "login_name_hmac"];
/// The name the token-signing key had in `server_secrets`.
pub const LEGACY_SIGNING_NAME: &str = "jwt_hs256";

/// What can go wrong with the key file.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key file {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("key file {path} is not a helpline key file: {why}")]
    Format { path: String, why: String },
    #[error("no key file: a PostgreSQL node must be given one (--key-file or HELPLINE_KEY_FILE, the same file on every node; see docs/security.md)")]
    Missing,
    #[error("the key file does not hold the keys this database was sealed with ({0}); give the right --key-file (see docs/security.md, \"Keys\")")]
    Mismatch(String),
}

/// One key with its id.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct KeyEntry {
    pub kid: String,
    /// A signing key or a keyed hash's key: the secret as the server uses it (a string, its bytes
    /// are the key); a data or audit key: 32 bytes, URL-safe base64 without padding.
    pub key: String,
    /// When it was added (ms since the epoch).
    #[serde(default)]
    pub created_at: i64,
}

/// The file's content (JSON).
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct KeyFile {
    pub version: u32,
    /// Token-signing keys, oldest first: the last signs, the one before it still verifies.
    pub signing: Vec<KeyEntry>,
    /// Data keys, oldest first: the last seals, every one opens what it sealed.
    pub data: Vec<KeyEntry>,
    /// The audit log's key (its chain is an HMAC chain under it).
    pub audit: KeyEntry,
    /// The keyed hashes' keys by name.
    pub hmac: BTreeMap<String, String>,
}

impl std::fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids = |l: &[KeyEntry]| l.iter().map(|k| k.kid.clone()).collect::<Vec<_>>();
        f.debug_struct("KeyFile")
            .field("signing", &kids(&self.signing))
            .field("data", &kids(&self.data))
            .field("audit", &self.audit.kid)
            .field("hmac", &self.hmac.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// `n` random bytes, URL-safe base64 without padding.
fn random_key() -> String {
    let mut buf = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// The next id of a list of keys named `prefix1`, `prefix2`, …
fn next_kid(prefix: &str, keys: &[KeyEntry]) -> String {
    let n = keys.iter().filter_map(|k| k.kid.strip_prefix(prefix).and_then(|n| n.parse::<u32>().ok())).max().unwrap_or(0);
    format!("{prefix}{}", n + 1)
}

impl KeyFile {
    /// A new key file: one key of each kind, fresh random.
    pub fn generate(now: i64) -> KeyFile {
        let entry = |kid: &str| KeyEntry { kid: kid.into(), key: random_key(), created_at: now };
        KeyFile {
            version: 1,
            signing: vec![entry("s1")],
            data: vec![entry("d1")],
            audit: entry("a1"),
            hmac: HMAC_KEY_NAMES.iter().map(|n| (n.to_string(), random_key())).collect(),
        }
    }

    /// Adds a new data key and a new signing key (they become the ones in use); returns their ids.
    pub fn rotate(&mut self, now: i64) -> (String, String) {
        let data = next_kid("d", &self.data);
        let signing = next_kid("s", &self.signing);
        self.data.push(KeyEntry { kid: data.clone(), key: random_key(), created_at: now });
        self.signing.push(KeyEntry { kid: signing.clone(), key: random_key(), created_at: now });
        (data, signing)
    }

    /// Every key's secret as written in the file (for tests that look for them elsewhere).
    pub fn all_secrets(&self) -> Vec<String> {
        let mut all: Vec<String> = self.signing.iter().chain(&self.data).map(|k| k.key.clone()).collect();
        all.push(self.audit.key.clone());
        all.extend(self.hmac.values().cloned());
        all
    }

    fn check(&self, path: &str) -> Result<(), KeyError> {
        let bad = |why: &str| Err(KeyError::Format { path: path.into(), why: why.into() });
        if self.version != 1 {
            return bad("unknown version");
        }
        if self.signing.is_empty() || self.data.is_empty() {
            return bad("it has no signing or no data key");
        }
        for k in self.data.iter().chain(std::iter::once(&self.audit)) {
            if decode_key(&k.key).is_none() {
                return bad(&format!("key {} is not 32 bytes of base64", k.kid));
            }
        }
        Ok(())
    }

    /// The keyed checks the database keeps of these keys: name → HMAC of a constant under the key, hex.
    pub fn checks(&self) -> Vec<(String, String)> {
        let mut all: Vec<(String, String)> = Vec::new();
        for k in &self.signing {
            all.push((format!("signing:{}", k.kid), key_check(k.key.as_bytes())));
        }
        for k in &self.data {
            all.push((format!("data:{}", k.kid), key_check(k.key.as_bytes())));
        }
        all.push((format!("audit:{}", self.audit.kid), key_check(self.audit.key.as_bytes())));
        for (name, key) in &self.hmac {
            all.push((format!("hmac:{name}"), key_check(key.as_bytes())));
        }
        all
    }
}

/// HMAC-SHA256 of a fixed text under `key`, hex: shows a key is the one, reveals nothing of it.
fn key_check(key: &[u8]) -> String {
    hmac_hex(key, b"helpline key check")
}

/// HMAC-SHA256 of `data` under `key`, hex.
pub fn hmac_hex(key: &[u8], data: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(data);
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// A data or audit key's 32 bytes.
pub fn decode_key(text: &str) -> Option<[u8; 32]> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text.trim()).ok()?;
    bytes.try_into().ok()
}

/// Reads a key file.
pub fn read_key_file(path: &Path) -> Result<KeyFile, KeyError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io { path: shown.clone(), source })?;
    let file: KeyFile = serde_json::from_str(&text).map_err(|e| KeyError::Format { path: shown.clone(), why: e.to_string() })?;
    file.check(&shown)?;
    Ok(file)
}

/// Writes a key file atomically (a temporary file beside it, mode 0600, then renamed over it).
pub fn write_key_file(path: &Path, file: &KeyFile) -> Result<(), KeyError> {
    let shown = path.display().to_string();
    let io = |source| KeyError::Io { path: shown.clone(), source };
    let text = serde_json::to_string_pretty(file).map_err(|e| KeyError::Format { path: shown.clone(), why: e.to_string() })?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut f = options.open(&tmp).map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(())
}

/// Reads the key file at `path`, creating it (fresh keys, mode 0600) when there is none; returns
/// whether it was created. Two processes creating it at once: one wins, both read its keys.
pub fn load_or_create(path: &Path, now: i64) -> Result<(KeyFile, bool), KeyError> {
    if path.exists() {
        return Ok((read_key_file(path)?, false));
    }
    let shown = path.display().to_string();
    let file = KeyFile::generate(now);
    let text = serde_json::to_string_pretty(&file).map_err(|e| KeyError::Format { path: shown.clone(), why: e.to_string() })?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut f) => {
            use std::io::Write;
            let io = |source| KeyError::Io { path: shown.clone(), source };
            f.write_all(text.as_bytes()).map_err(io)?;
            f.sync_all().map_err(io)?;
            tracing::info!(path = %shown, "key file created (keep it, and back it up apart from the database: docs/security.md)");
            Ok((file, true))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok((read_key_file(path)?, false)),
        Err(source) => Err(KeyError::Io { path: shown, source }),
    }
}

/// The default key file of an SQLite database URL (`sqlite:/x/helpline.db` → `/x/helpline.db.keys`);
/// None for an in-memory database or another engine.
pub fn default_key_file(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path.contains(":memory:") || url.contains("mode=memory") {
        return None;
    }
    Some(PathBuf::from(format!("{path}.keys")))
}

/// Key files this process opened or was told of, by database URL: a second handle on the same
/// database in this process (a command's, a test's) uses the same keys ([`remember_key_file`]).
fn known() -> &'static Mutex<BTreeMap<String, PathBuf>> {
    static KNOWN: std::sync::OnceLock<Mutex<BTreeMap<String, PathBuf>>> = std::sync::OnceLock::new();
    KNOWN.get_or_init(Default::default)
}

/// Tells this process which key file belongs to the database at `url`: [`super::Store::connect`]
/// then opens it with that key file when given none.
pub fn remember_key_file(url: &str, path: &Path) {
    known().lock().unwrap_or_else(|p| p.into_inner()).insert(url.to_string(), path.to_path_buf());
}

/// The key file this process knows for the database at `url` ([`remember_key_file`]).
pub fn remembered_key_file(url: &str) -> Option<PathBuf> {
    known().lock().unwrap_or_else(|p| p.into_inner()).get(url).cloned()
}

/// The keys a store holds: the key file's content and where it is (None: in memory only, for an
/// in-memory database; or no key file at all, [`Keys::missing`]).
#[derive(Debug, Clone)]
pub struct Keys {
    inner: Arc<RwLock<Option<KeyFile>>>,
    path: Option<PathBuf>,
}

impl Keys {
    /// Keys held in memory only (an in-memory database: nothing outlives the process).
    pub fn ephemeral() -> Keys {
        Keys { inner: Arc::new(RwLock::new(Some(KeyFile::generate(0)))), path: None }
    }

    /// No key file: anything that needs a key fails with [`KeyError::Missing`].
    pub fn missing() -> Keys {
        Keys { inner: Arc::new(RwLock::new(None)), path: None }
    }

    /// The key file at `path`, created when there is none.
    pub fn open(path: &Path, now: i64) -> Result<Keys, KeyError> {
        let (file, _created) = load_or_create(path, now)?;
        Ok(Keys { inner: Arc::new(RwLock::new(Some(file))), path: Some(path.to_path_buf()) })
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub fn is_missing(&self) -> bool {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).is_none()
    }

    /// Reads the keys.
    pub fn with<T>(&self, f: impl FnOnce(&KeyFile) -> T) -> Result<T, KeyError> {
        let guard = self.inner.read().unwrap_or_else(|p| p.into_inner());
        guard.as_ref().map(f).ok_or(KeyError::Missing)
    }

    /// Changes the keys and writes the key file (when there is one).
    pub fn update<T>(&self, f: impl FnOnce(&mut KeyFile) -> T) -> Result<T, KeyError> {
        let mut guard = self.inner.write().unwrap_or_else(|p| p.into_inner());
        let file = guard.as_mut().ok_or(KeyError::Missing)?;
        let mut changed = file.clone();
        let out = f(&mut changed);
        if let Some(path) = &self.path {
            write_key_file(path, &changed)?;
        }
        *file = changed;
        Ok(out)
    }

    /// A copy of the keys (for the server's wiring: the signing keys).
    pub fn snapshot(&self) -> Result<KeyFile, KeyError> {
        self.with(Clone::clone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_is_created_once_0600_and_read_back() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("h.db.keys");
        let (first, created) = load_or_create(&path, 5).expect("created");
        assert!(created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "only its owner reads it");
        }
        let (again, created) = load_or_create(&path, 6).expect("read");
        assert!(!created);
        assert_eq!(first.all_secrets(), again.all_secrets());
        assert_eq!(first.hmac.len(), HMAC_KEY_NAMES.len());
    }

    #[test]
    fn rotation_adds_new_ids_and_keeps_the_old_keys() {
        let mut file = KeyFile::generate(0);
        let (d, s) = file.rotate(1);
        assert_eq!((d.as_str(), s.as_str()), ("d2", "s2"));
        assert_eq!(file.data.len(), 2);
        assert_eq!(file.signing.last().map(|k| k.kid.as_str()), Some("s2"));
        assert_ne!(file.data[0].key, file.data[1].key);
    }

    #[test]
    fn a_damaged_key_file_is_refused_with_its_path() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("k");
        std::fs::write(&path, "{\"version\": 1}").expect("write");
        let err = read_key_file(&path).expect_err("refused").to_string();
        assert!(err.contains("not a helpline key file"), "{err}");
    }

    #[test]
    fn the_default_key_file_sits_beside_the_sqlite_file() {
        assert_eq!(default_key_file("sqlite:/x/h.db"), Some(PathBuf::from("/x/h.db.keys")));
        assert_eq!(default_key_file("sqlite:///x/h.db?mode=rwc"), Some(PathBuf::from("/x/h.db.keys")));
        assert_eq!(default_key_file("sqlite::memory:"), None);
        assert_eq!(default_key_file("postgres://u@h/db"), None);
    }
}
