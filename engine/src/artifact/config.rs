//! Where artifacts live: a URL, provider options and transfer settings.

use std::fmt;
use std::path::Path as FsPath;

use url::Url;

use super::error::{ArtifactError, ArtifactResult};
use super::retry::RetryPolicy;
use super::scheme::Provider;

/// The environment variable [`ArtifactConfig::from_env`] reads the store URL from.
pub const ENV_URL: &str = "DAGFORGE_ARTIFACTS";

/// How to open an [`ArtifactStore`](super::ArtifactStore): a URL, provider options and transfer settings.
///
/// | URL | provider | feature |
/// |---|---|---|
/// | `file:///var/lib/dagforge` or `/var/lib/dagforge` | local directory | always |
/// | `memory://` | process memory | always |
/// | `s3://bucket/prefix` | Amazon S3 / S3-compatible | `s3` |
/// | `gs://bucket/prefix` | Google Cloud Storage | `gcs` |
/// | `az://container/prefix` | Azure Blob Storage | `azure` |
///
/// Cloud providers read their usual environment variables (`AWS_*`, `GOOGLE_*`,
/// `AZURE_*`: region, endpoint, credentials); [`option`](Self::option) sets the same
/// keys explicitly and wins over the environment. Option values are never printed:
/// `Debug` shows their keys only, and URLs are shown without user info or query.
///
/// ```
/// use dagforge::artifact::{ArtifactConfig, Provider};
///
/// let config = ArtifactConfig::new("s3://datasets/nightly")?
///     .option("region", "eu-west-1")
///     .option("secret_access_key", "hunter2");
/// assert_eq!(config.provider(), Provider::S3);
/// assert!(!format!("{config:?}").contains("hunter2"));
/// # Ok::<(), dagforge::artifact::ArtifactError>(())
/// ```
#[derive(Clone)]
pub struct ArtifactConfig {
    pub(super) url: Url,
    pub(super) provider: Provider,
    pub(super) options: Vec<(String, String)>,
    pub(super) retry: RetryPolicy,
    pub(super) part_size: usize,
    pub(super) upload_concurrency: usize,
}

impl ArtifactConfig {
    /// Default size of one part of a multipart upload (8 MiB).
    pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;
    /// Smallest part size accepted (5 MiB, the S3 minimum).
    pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
    /// Default number of parts uploaded at once.
    pub const DEFAULT_UPLOAD_CONCURRENCY: usize = 4;

    /// Parses a store URL (see the table above). A bare absolute path is taken as a
    /// `file://` URL.
    pub fn new(url: &str) -> ArtifactResult<Self> {
        let parsed = if url.starts_with('/') {
            Url::from_directory_path(url).map_err(|()| ArtifactError::InvalidUrl {
                url: url.to_owned(),
                reason: "not an absolute directory path".to_owned(),
            })?
        } else {
            Url::parse(url).map_err(|e| ArtifactError::InvalidUrl {
                url: redact_str(url),
                reason: e.to_string(),
            })?
        };
        let Some(provider) = Provider::from_scheme(parsed.scheme()) else {
            return Err(ArtifactError::InvalidUrl {
                url: redact(&parsed),
                reason: "unknown scheme: use file://, memory://, s3://, gs:// or az://".to_owned(),
            });
        };
        let has_host = parsed.host_str().is_some_and(|h| !h.is_empty());
        match provider {
            Provider::File if has_host => {
                return Err(ArtifactError::InvalidUrl {
                    url: redact(&parsed),
                    reason: "a file:// URL takes an absolute path and no host (file:///dir)"
                        .to_owned(),
                });
            }
            Provider::File if parsed.to_file_path().is_err() => {
                return Err(ArtifactError::InvalidUrl {
                    url: redact(&parsed),
                    reason: "not a local path".to_owned(),
                });
            }
            Provider::S3 | Provider::Gcs | Provider::Azure if !has_host => {
                return Err(ArtifactError::InvalidUrl {
                    url: redact(&parsed),
                    reason: format!("name the bucket: {}://bucket/prefix", provider.scheme()),
                });
            }
            _ => {}
        }
        Ok(ArtifactConfig {
            url: parsed,
            provider,
            options: Vec::new(),
            retry: RetryPolicy::default(),
            part_size: Self::DEFAULT_PART_SIZE,
            upload_concurrency: Self::DEFAULT_UPLOAD_CONCURRENCY,
        })
    }

    /// A store in a local directory (created on first write).
    pub fn local(dir: impl AsRef<FsPath>) -> ArtifactResult<Self> {
        let dir = dir.as_ref();
        let url = Url::from_directory_path(dir).map_err(|()| ArtifactError::InvalidUrl {
            url: dir.display().to_string(),
            reason: "not an absolute directory path".to_owned(),
        })?;
        Self::new(url.as_str())
    }

    /// The default store: a directory private to this user, under its data
    /// directory: `$XDG_DATA_HOME/dagforge/artifacts` when `XDG_DATA_HOME` is an
    /// absolute path, else `~/.local/share/dagforge/artifacts`. Without a home
    /// directory, `dagforge-artifacts-<uid>` under the system's temporary directory.
    ///
    /// Like every `file://` store, the directory is created `0700` by the first
    /// write, and an existing one that belongs to another user or is writable by
    /// group or others is refused ([`ArtifactError::UnsafeDirectory`]). Apps with a
    /// SQLite store keep artifacts beside the database instead
    /// ([`beside_database`](Self::beside_database)).
    pub fn default_local() -> Self {
        let dir = default_dir();
        // Only a relative temporary directory in a process without a current
        // directory fails here: memory is the one store left that needs no path.
        Self::local(&dir).unwrap_or_else(|_| Self::memory())
    }

    /// A store beside a database file: `dagforge.db` → the directory
    /// `dagforge-artifacts` next to it (`<file stem>-artifacts`). A relative path is
    /// taken from the current directory.
    ///
    /// ```
    /// use dagforge::artifact::ArtifactConfig;
    ///
    /// let config = ArtifactConfig::beside_database("/srv/app/dagforge.db")?;
    /// assert_eq!(config.redacted_url(), "file:///srv/app/dagforge-artifacts/");
    /// # Ok::<(), dagforge::artifact::ArtifactError>(())
    /// ```
    pub fn beside_database(file: impl AsRef<FsPath>) -> ArtifactResult<Self> {
        let file = file.as_ref();
        let file = if file.is_relative() {
            std::env::current_dir()
                .map_err(|e| ArtifactError::InvalidUrl {
                    url: file.display().to_string(),
                    reason: format!("a relative path needs the current directory: {e}"),
                })?
                .join(file)
        } else {
            file.to_path_buf()
        };
        let stem = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "dagforge".to_owned());
        let dir = file
            .parent()
            .unwrap_or_else(|| FsPath::new("/"))
            .join(format!("{stem}-artifacts"));
        Self::local(&dir)
    }

    /// A store in this process's memory.
    pub fn memory() -> Self {
        ArtifactConfig {
            url: Url::parse("memory://").expect("`memory://` is a valid URL"),
            provider: Provider::Memory,
            options: Vec::new(),
            retry: RetryPolicy::default(),
            part_size: Self::DEFAULT_PART_SIZE,
            upload_concurrency: Self::DEFAULT_UPLOAD_CONCURRENCY,
        }
    }

    /// The store named by the `DAGFORGE_ARTIFACTS` environment variable, or
    /// [`default_local`](Self::default_local) when it is unset or empty. An unknown
    /// scheme there is an error ([`ArtifactError::InvalidUrl`]).
    pub fn from_env() -> ArtifactResult<Self> {
        match std::env::var(ENV_URL) {
            Ok(url) if !url.trim().is_empty() => Self::new(url.trim()),
            _ => Ok(Self::default_local()),
        }
    }

    /// Sets a provider option (`region`, `endpoint`, `allow_http`,
    /// `access_key_id`, …: the configuration keys of the provider, with or without
    /// their `aws_`/`google_`/`azure_` prefix). An unknown key fails
    /// [`build`](Self::build), naming the key.
    pub fn option(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.options.push((key.into(), value.into()));
        self
    }

    /// How provider failures are retried (default: [`RetryPolicy::default`]).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Size of one part of a streamed upload (default 8 MiB, at least 5 MiB). A
    /// stream shorter than one part is stored with a single request.
    pub fn part_size(mut self, bytes: usize) -> Self {
        self.part_size = bytes.max(Self::MIN_PART_SIZE);
        self
    }

    /// How many parts of one streamed upload are in flight at once (default 4, at
    /// least 1). Memory used by a streamed upload is about `part_size ×
    /// (upload_concurrency + 1)`.
    pub fn upload_concurrency(mut self, parts: usize) -> Self {
        self.upload_concurrency = parts.max(1);
        self
    }

    /// The provider the URL names.
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// The URL without user info or query (safe to log).
    pub fn redacted_url(&self) -> String {
        redact(&self.url)
    }
}

impl fmt::Debug for ArtifactConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<&str> = self.options.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("ArtifactConfig")
            .field("url", &redact(&self.url))
            .field("provider", &self.provider)
            .field("options (values redacted)", &keys)
            .field("retry", &self.retry)
            .field("part_size", &self.part_size)
            .field("upload_concurrency", &self.upload_concurrency)
            .finish()
    }
}

/// The default directory: see [`ArtifactConfig::default_local`].
fn default_dir() -> std::path::PathBuf {
    let absolute = |var: &str| {
        std::env::var_os(var)
            .map(std::path::PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    if let Some(data) = absolute("XDG_DATA_HOME") {
        return data.join("dagforge").join("artifacts");
    }
    if let Some(home) = absolute("HOME") {
        return home.join(".local/share/dagforge/artifacts");
    }
    #[cfg(unix)]
    let name = match super::local::euid() {
        Ok(uid) => format!("dagforge-artifacts-{uid}"),
        Err(_) => "dagforge-artifacts".to_owned(),
    };
    #[cfg(not(unix))]
    let name = "dagforge-artifacts".to_owned();
    let mut dir = std::env::temp_dir().join(name);
    if dir.is_relative()
        && let Ok(cwd) = std::env::current_dir()
    {
        dir = cwd.join(dir);
    }
    dir
}

/// The URL without user info, query or fragment (see [`crate::redact::url`]).
pub(super) fn redact(url: &Url) -> String {
    crate::redact::url(url.as_str())
}

/// The same for a string that is not a URL.
fn redact_str(url: &str) -> String {
    crate::redact::url(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_scheme() {
        let cases = [
            ("file:///tmp/a", Provider::File),
            ("/tmp/a", Provider::File),
            ("memory://", Provider::Memory),
            ("s3://bucket/prefix", Provider::S3),
            ("gs://bucket", Provider::Gcs),
            ("az://container/p", Provider::Azure),
        ];
        for (url, provider) in cases {
            assert_eq!(
                ArtifactConfig::new(url).unwrap().provider(),
                provider,
                "{url}"
            );
        }
    }

    #[test]
    fn rejects_bad_urls_with_the_reason() {
        for (url, needle) in [
            ("ftp://host/x", "unknown scheme"),
            ("s3:///nobucket", "name the bucket"),
            ("file://host/x", "no host"),
            ("relative/dir", "relative URL"),
        ] {
            let err = ArtifactConfig::new(url).unwrap_err();
            assert!(
                matches!(err, ArtifactError::InvalidUrl { .. }),
                "{url}: {err:?}"
            );
            assert!(err.to_string().contains(needle), "{url}: {err}");
        }
    }

    #[test]
    fn credentials_never_show() {
        let config = ArtifactConfig::new("s3://user:pa55@bucket/p?sig=s3cr3t")
            .unwrap()
            .option("secret_access_key", "hunter2");
        let shown = format!("{config:?} {}", config.redacted_url());
        for secret in ["pa55", "s3cr3t", "hunter2", "user"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        let err = ArtifactConfig::new("xx://user:pa55@h/p?sig=s3cr3t").unwrap_err();
        assert!(!err.to_string().contains("pa55"));
        assert!(!err.to_string().contains("s3cr3t"));
        assert_eq!(redact_str("s3:/x:y@b/p?q"), "s3:/x:y@b/p");
        assert_eq!(redact_str("a://u:p@b/p"), "a://b/p");
    }

    #[test]
    fn transfer_settings_have_floors() {
        let config = ArtifactConfig::memory().part_size(1).upload_concurrency(0);
        assert_eq!(config.part_size, ArtifactConfig::MIN_PART_SIZE);
        assert_eq!(config.upload_concurrency, 1);
    }
}
