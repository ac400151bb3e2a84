//! The user's own configuration file, `$XDG_CONFIG_HOME/zccache/config.toml` (else
//! `~/.config/zccache/config.toml`), and the remote tier's settings resolved from it and the
//! environment. The remote applies to every compile the daemon serves, so it comes only from
//! the user — the environment first, then this file — never from a project's zccache.toml
//! (one repository's remote would otherwise receive, and serve, every project's objects).
//!
//! ```toml
//! [store]
//! compression = 1        # zstd level 1..19, or "off" (ZCCACHE_COMPRESSION overrides)
//!
//! [compile]
//! prefix = "distcc"      # C/C++ misses run as `distcc gcc ...` (ZCCACHE_PREFIX overrides)
//!
//! [remote]
//! url = "redis://cache.internal:6379/0"   # or s3://bucket/prefix
//! namespace = "team-gcc12"
//! readonly = false
//! key_file = "~/.config/zccache/remote.key"   # signs uploads; unsigned entries refused
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::remote::{
    KEY_ENV, KEY_FILE_ENV, NAMESPACE_ENV, READONLY_ENV, REMOTE_ENV, Remote, RemoteSettings,
    signing_key,
};

/// The default remote namespace.
const DEFAULT_NAMESPACE: &str = "zccache";
/// Largest key file read.
const MAX_KEY_FILE: u64 = 64 << 10;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct UserFile {
    remote: RemoteSection,
    store: StoreSection,
    compile: CompileSection,
}

/// `[compile]` of the user's config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct CompileSection {
    /// A command C/C++ misses run through (`"distcc"`).
    prefix: Option<String>,
}

/// `[store]` of the user's config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct StoreSection {
    /// `"off"` or a zstd level.
    compression: Option<toml::Value>,
}

/// `[remote]` of the user's config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RemoteSection {
    url: Option<String>,
    namespace: Option<String>,
    readonly: Option<bool>,
    key_file: Option<PathBuf>,
}

/// Where the user's config file is.
pub fn path() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    var("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|home| PathBuf::from(home).join(".config")))
        .map(|dir| dir.join("zccache").join("config.toml"))
}

/// The remote tier's settings, if one is configured: `ZCCACHE_REMOTE` (with
/// `ZCCACHE_REMOTE_NAMESPACE`, `_READONLY`, `_KEY` or `_KEY_FILE`), else the user's config
/// file's `[remote]`. An error is one line saying what is wrong (the cache stays local).
pub fn remote_settings() -> Option<Result<RemoteSettings, String>> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let section = match env(REMOTE_ENV) {
        Some(url) => RemoteSection {
            url: Some(url),
            namespace: env(NAMESPACE_ENV),
            readonly: env(READONLY_ENV).map(|v| v == "1" || v == "true"),
            key_file: None,
        },
        None => match user_section() {
            Ok(section) => section,
            Err(message) => return Some(Err(message)),
        },
    };
    let url = section.url.clone()?;
    let key_file = env(KEY_FILE_ENV).map(PathBuf::from).or(section.key_file);
    let key = match (env(KEY_ENV), key_file) {
        (Some(secret), _) => signing_key(secret.as_bytes())
            .map(Some)
            .map_err(|e| format!("{KEY_ENV}: {e}")),
        (None, Some(file)) => read_key(&file),
        (None, None) => Ok(None),
    };
    Some(key.map(|signing_key| {
        RemoteSettings {
            url,
            namespace: section
                .namespace
                .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string()),
            readonly: section.readonly.unwrap_or(false),
            signing_key,
        }
    }))
}

/// The remote tier the user configured, opened (not contacted); `None` without one, an
/// error line when its settings or URL are unusable.
pub fn remote() -> Option<Result<std::sync::Arc<Remote>, String>> {
    remote_settings().map(|settings| settings.and_then(|s| Remote::new(&s)))
}

/// `[remote]` of the user's config file (empty when there is no file).
fn user_section() -> Result<RemoteSection, String> {
    user_file().map(|file| file.remote)
}

/// `compression` of the user config's `[store]` as written (`None`: not set, or no file),
/// or what is wrong with the file.
pub fn store_compression() -> Result<Option<String>, String> {
    Ok(user_file()?.store.compression.map(|value| match value {
        toml::Value::String(text) => text,
        other => other.to_string(),
    }))
}

/// `prefix` of the user config's `[compile]`: the command C/C++ misses run through (a file
/// that cannot be read is logged, and no prefix used).
pub fn compile_prefix() -> Option<String> {
    match user_file() {
        Ok(file) => file.compile.prefix.filter(|p| !p.trim().is_empty()),
        Err(why) => {
            tracing::warn!("{why}; compiling without a prefix");
            None
        }
    }
}

/// The user's config file, parsed (empty when there is none).
fn user_file() -> Result<UserFile, String> {
    let Some(path) = path() else {
        return Ok(UserFile::default());
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(UserFile::default()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    toml::from_str::<UserFile>(&text).map_err(|e| {
        format!(
            "{}: {}",
            path.display(),
            e.to_string().trim_end().replace('\n', " ")
        )
    })
}

/// The signing key from a key file (`~/` expanded; a regular file of at most 64 KiB).
fn read_key(file: &Path) -> Result<Option<[u8; 32]>, String> {
    let file = match (file.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => file.to_path_buf(),
    };
    let meta = std::fs::metadata(&file).map_err(|e| format!("key file {}: {e}", file.display()))?;
    if !meta.is_file() || meta.len() > MAX_KEY_FILE {
        return Err(format!(
            "key file {} is not a regular file of at most 64 KiB",
            file.display()
        ));
    }
    let secret = std::fs::read(&file).map_err(|e| format!("key file {}: {e}", file.display()))?;
    signing_key(&secret)
        .map(Some)
        .map_err(|e| format!("key file {}: {e}", file.display()))
}
