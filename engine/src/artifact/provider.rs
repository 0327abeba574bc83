//! Opening the `object_store` backend a configuration names.

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::path::Path;

use super::config::{ArtifactConfig, redact};
use super::error::{ArtifactError, ArtifactResult};
use super::local::LocalRoot;
use super::scheme::Provider;

/// An opened backend: the object store, the root every key is under, and for
/// `file://` the directory itself (whose safety every operation checks).
pub(crate) struct Opened {
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) root: Path,
    pub(crate) local: Option<LocalRoot>,
}

/// Opens the backend. With `check_now`, an existing `file://` root that is not
/// private is refused here; without, at the first operation.
pub(crate) fn open(config: &ArtifactConfig, check_now: bool) -> ArtifactResult<Opened> {
    let display = redact(&config.url);
    let root = Path::from_url_path(config.url.path()).map_err(|e| ArtifactError::InvalidUrl {
        url: display.clone(),
        reason: format!("the path is not a valid object path: {e}"),
    })?;
    match config.provider {
        Provider::File => {
            no_options(config, &display)?;
            let dir = config
                .url
                .to_file_path()
                .map_err(|()| ArtifactError::InvalidUrl {
                    url: display.clone(),
                    reason: "not a local path".to_owned(),
                })?;
            // Rooted at `/` with our own prefix: nothing is created until the first
            // write, which makes the root private (0700). An existing root is checked
            // now, so that a directory planted by another user is refused at once.
            let fs =
                Arc::new(object_store::local::LocalFileSystem::new().with_automatic_cleanup(true));
            let local = LocalRoot {
                fs: Arc::clone(&fs),
                dir: dir.components().collect(),
                display: display.clone(),
            };
            if check_now {
                local.check_existing()?;
            }
            Ok(Opened {
                store: fs,
                root,
                local: Some(local),
            })
        }
        Provider::Memory => {
            no_options(config, &display)?;
            Ok(Opened {
                store: Arc::new(object_store::memory::InMemory::new()),
                root,
                local: None,
            })
        }
        Provider::S3 => s3(config, &display, root),
        Provider::Gcs => gcs(config, &display, root),
        Provider::Azure => azure(config, &display, root),
    }
}

fn no_options(config: &ArtifactConfig, display: &str) -> ArtifactResult<()> {
    match config.options.first() {
        Some((key, _)) => Err(ArtifactError::Config {
            store: display.to_owned(),
            source: format!(
                "option `{key}` does not apply to {} stores",
                config.provider
            )
            .into(),
        }),
        None => Ok(()),
    }
}

#[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
fn client_retry(config: &ArtifactConfig) -> object_store::RetryConfig {
    object_store::RetryConfig {
        backoff: object_store::BackoffConfig {
            init_backoff: config
                .retry
                .initial()
                .max(std::time::Duration::from_millis(1)),
            max_backoff: config.retry.max().max(config.retry.initial()),
            base: 2.0,
        },
        max_retries: config.retry.retries() as usize,
        retry_timeout: std::time::Duration::from_secs(60),
    }
}

#[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
fn config_error(display: &str, source: object_store::Error) -> ArtifactError {
    ArtifactError::Config {
        store: display.to_owned(),
        source: Box::new(source),
    }
}

/// Applies the explicit options, naming an unknown key.
#[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
fn apply_options<B, K>(
    mut builder: B,
    config: &ArtifactConfig,
    display: &str,
    set: impl Fn(B, K, &str) -> B,
) -> ArtifactResult<B>
where
    K: std::str::FromStr,
{
    for (key, value) in &config.options {
        let Ok(parsed) = key.to_ascii_lowercase().parse::<K>() else {
            return Err(ArtifactError::Config {
                store: display.to_owned(),
                source: format!("unknown option `{key}` for {} stores", config.provider).into(),
            });
        };
        builder = set(builder, parsed, value);
    }
    Ok(builder)
}

#[cfg(feature = "s3")]
fn s3(config: &ArtifactConfig, display: &str, root: Path) -> ArtifactResult<Opened> {
    use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
    let builder = AmazonS3Builder::from_env()
        .with_url(config.url.as_str())
        .with_retry(client_retry(config));
    let builder = apply_options(builder, config, display, |b, k: AmazonS3ConfigKey, v| {
        b.with_config(k, v)
    })?;
    let store = builder.build().map_err(|e| config_error(display, e))?;
    Ok(Opened {
        store: Arc::new(store),
        root,
        local: None,
    })
}

#[cfg(not(feature = "s3"))]
fn s3(_: &ArtifactConfig, _: &str, _: Path) -> ArtifactResult<Opened> {
    Err(ArtifactError::ProviderNotEnabled {
        scheme: "s3",
        feature: "s3",
    })
}

#[cfg(feature = "gcs")]
fn gcs(config: &ArtifactConfig, display: &str, root: Path) -> ArtifactResult<Opened> {
    use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
    let builder = GoogleCloudStorageBuilder::from_env()
        .with_url(config.url.as_str())
        .with_retry(client_retry(config));
    let builder = apply_options(builder, config, display, |b, k: GoogleConfigKey, v| {
        b.with_config(k, v)
    })?;
    let store = builder.build().map_err(|e| config_error(display, e))?;
    Ok(Opened {
        store: Arc::new(store),
        root,
        local: None,
    })
}

#[cfg(not(feature = "gcs"))]
fn gcs(_: &ArtifactConfig, _: &str, _: Path) -> ArtifactResult<Opened> {
    Err(ArtifactError::ProviderNotEnabled {
        scheme: "gs",
        feature: "gcs",
    })
}

#[cfg(feature = "azure")]
fn azure(config: &ArtifactConfig, display: &str, root: Path) -> ArtifactResult<Opened> {
    use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
    let builder = MicrosoftAzureBuilder::from_env()
        .with_url(config.url.as_str())
        .with_retry(client_retry(config));
    let builder = apply_options(builder, config, display, |b, k: AzureConfigKey, v| {
        b.with_config(k, v)
    })?;
    let store = builder.build().map_err(|e| config_error(display, e))?;
    Ok(Opened {
        store: Arc::new(store),
        root,
        local: None,
    })
}

#[cfg(not(feature = "azure"))]
fn azure(_: &ArtifactConfig, _: &str, _: Path) -> ArtifactResult<Opened> {
    Err(ArtifactError::ProviderNotEnabled {
        scheme: "az",
        feature: "azure",
    })
}
