//! `ArtifactRef<T>`: the small, typed handle that travels between nodes.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::scheme::Provider;

/// The content type of JSON artifacts.
pub const JSON: &str = "application/json";
/// The content type of byte and stream artifacts.
pub const OCTET_STREAM: &str = "application/octet-stream";

/// The type of an artifact saved as raw bytes: read it with `load_bytes`,
/// `load_stream` or `load_range`, or give it a meaningful type with
/// [`ArtifactRef::cast`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Blob {}

/// A reference to an artifact: where it is (provider and key), how big it is, its
/// SHA-256 and content type. `T` is what the artifact holds; it costs nothing at run
/// time and is not serialized, so a reference passes between nodes as a small JSON
/// object and arrives typed wherever the receiving input says so.
///
/// ```
/// use dagforge::artifact::{ArtifactRef, ArtifactStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), dagforge::artifact::ArtifactError> {
/// let store = ArtifactStore::memory();
/// let r: ArtifactRef<Vec<u32>> = store.save_json("numbers.json", &vec![1, 2, 3]).await?;
/// assert_eq!(r.size(), 7);
/// assert_eq!(r.content_type(), "application/json");
///
/// // As it travels between nodes:
/// let wire = serde_json::to_value(&r).unwrap();
/// assert_eq!(wire["key"], "numbers.json");
/// let back: ArtifactRef<Vec<u32>> = serde_json::from_value(wire).unwrap();
/// assert_eq!(store.load(&back).await?, vec![1, 2, 3]);
/// # Ok(())
/// # }
/// ```
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub struct ArtifactRef<T> {
    provider: Provider,
    key: String,
    size: u64,
    sha256: ContentHash,
    content_type: String,
    #[serde(skip)]
    ty: PhantomData<fn() -> T>,
}

impl<T> ArtifactRef<T> {
    pub(crate) fn new(
        provider: Provider,
        key: String,
        size: u64,
        sha256: ContentHash,
        content_type: &str,
    ) -> Self {
        ArtifactRef {
            provider,
            key,
            size,
            sha256,
            content_type: content_type.to_owned(),
            ty: PhantomData,
        }
    }

    /// The kind of store the artifact was written to.
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// The key, relative to the store's root (`runs/<run>/<node>/attempt-<n>/<name>`
    /// for artifacts saved from a job).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The SHA-256 of the content; checked when the whole artifact is read.
    pub fn sha256(&self) -> &ContentHash {
        &self.sha256
    }

    /// The content type (`application/json` for values, `application/octet-stream`
    /// for bytes and streams unless given).
    pub fn content_type(&self) -> &str {
        &self.content_type
    }

    /// The same artifact, seen as holding a `U`.
    pub fn cast<U>(self) -> ArtifactRef<U> {
        ArtifactRef {
            provider: self.provider,
            key: self.key,
            size: self.size,
            sha256: self.sha256,
            content_type: self.content_type,
            ty: PhantomData,
        }
    }

    /// The same reference with another content type.
    pub fn with_content_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = content_type.into();
        self
    }
}

// Manual impls: derives would require `T: Clone`, `T: Debug`, … for a `T` that is
// never stored.
impl<T> Clone for ArtifactRef<T> {
    fn clone(&self) -> Self {
        ArtifactRef {
            provider: self.provider,
            key: self.key.clone(),
            size: self.size,
            sha256: self.sha256,
            content_type: self.content_type.clone(),
            ty: PhantomData,
        }
    }
}

impl<T> PartialEq for ArtifactRef<T> {
    fn eq(&self, other: &Self) -> bool {
        self.provider == other.provider
            && self.key == other.key
            && self.size == other.size
            && self.sha256 == other.sha256
            && self.content_type == other.content_type
    }
}

impl<T> Eq for ArtifactRef<T> {}

impl<T> Hash for ArtifactRef<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.provider.hash(state);
        self.key.hash(state);
        self.sha256.hash(state);
    }
}

impl<T> fmt::Debug for ArtifactRef<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArtifactRef")
            .field("type", &std::any::type_name::<T>())
            .field("provider", &self.provider)
            .field("key", &self.key)
            .field("size", &self.size)
            .field("sha256", &self.sha256)
            .field("content_type", &self.content_type)
            .finish()
    }
}

impl<T> fmt::Display for ArtifactRef<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{} ({} bytes)", self.provider, self.key, self.size)
    }
}

/// A SHA-256 digest, written `sha256:<64 hex digits>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentHash([u8; 32]);

impl ContentHash {
    pub(crate) fn from_digest(bytes: [u8; 32]) -> Self {
        ContentHash(bytes)
    }

    /// The 32 bytes of the digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The text is not `sha256:` followed by 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a content hash (expected `sha256:` and 64 hex digits)")]
pub struct ParseContentHashError(String);

impl FromStr for ContentHash {
    type Err = ParseContentHashError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseContentHashError(s.chars().take(80).collect());
        let hex = s.strip_prefix("sha256:").ok_or_else(bad)?;
        if hex.len() != 64 || !hex.is_ascii() {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(ContentHash(out))
    }
}

impl Serialize for ContentHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ContentHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_round_trips_and_rejects_garbage() {
        let h = ContentHash::from_digest([0xab; 32]);
        let s = h.to_string();
        assert_eq!(s.len(), 7 + 64);
        assert_eq!(s.parse::<ContentHash>().unwrap(), h);
        for bad in ["", "sha256:", "md5:00", &s[..s.len() - 1], &format!("{s}0")] {
            assert!(bad.parse::<ContentHash>().is_err(), "{bad}");
        }
        let not_hex = format!("sha256:{}", "zz".repeat(32));
        assert!(not_hex.parse::<ContentHash>().is_err());
        let non_ascii = format!("sha256:{}é", "0".repeat(62));
        assert!(non_ascii.parse::<ContentHash>().is_err());
    }

    #[test]
    fn refs_serialize_without_their_type() {
        let r: ArtifactRef<String> = ArtifactRef::new(
            Provider::S3,
            "runs/a/b".to_owned(),
            3,
            ContentHash::from_digest([0; 32]),
            JSON,
        );
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["provider"], "s3");
        assert_eq!(v["size"], 3);
        assert_eq!(v.as_object().unwrap().len(), 5);
        let back: ArtifactRef<String> = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
        assert_eq!(r.clone().cast::<Blob>().key(), "runs/a/b");
        assert!(format!("{r:?}").contains("alloc::string::String"));
    }
}
