//! [`Capacity`]: what a worker offers and what an attempt takes (CPU, memory, slots),
//! parsed from Kubernetes-style quantities (`500m`, `2`, `512Mi`, `16Gi`, `1G`).

use serde::{Deserialize, Serialize};

use crate::job::Resources;

/// CPU (in thousandths of a core), memory (in bytes) and slots (concurrent
/// attempts): a worker's capacity, or one attempt's demand on it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Capacity {
    /// CPU in thousandths of a core (`cpu=8` is 8000).
    pub cpu_millis: u64,
    /// Memory in bytes.
    pub memory_bytes: u64,
    /// Concurrent attempts.
    pub slots: u32,
}

/// A capacity or resource quantity that does not parse; names the culprit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CapacityError {
    /// `key=value` expected.
    #[error("capacity: `{0}` is not key=value (cpu=8,memory=16Gi,slots=32)")]
    NotPair(String),
    /// A key other than cpu, memory, slots.
    #[error("capacity: unknown resource `{0}` (cpu, memory or slots)")]
    UnknownKey(String),
    /// A value that is not a quantity.
    #[error("capacity: {key} = `{value}` is not a quantity (e.g. 500m, 2, 512Mi, 16Gi)")]
    BadQuantity {
        /// cpu, memory or slots.
        key: &'static str,
        /// What was given (at most 64 characters of it).
        value: String,
    },
}

/// Longest quantity text read (longer ones are refused before parsing).
const MAX_QUANTITY: usize = 32;

impl Capacity {
    /// Nothing.
    pub const ZERO: Capacity = Capacity {
        cpu_millis: 0,
        memory_bytes: 0,
        slots: 0,
    };

    /// One slot, no CPU or memory: an attempt of a job that asks for no resources.
    pub const ONE_SLOT: Capacity = Capacity {
        cpu_millis: 0,
        memory_bytes: 0,
        slots: 1,
    };

    /// `slots` slots and nothing else.
    pub fn slots(slots: u32) -> Self {
        Capacity {
            slots,
            ..Capacity::ZERO
        }
    }

    /// The same capacity with `cpu_millis` thousandths of a core.
    pub fn with_cpu_millis(mut self, cpu_millis: u64) -> Self {
        self.cpu_millis = cpu_millis;
        self
    }

    /// The same capacity with `memory_bytes` bytes of memory.
    pub fn with_memory_bytes(mut self, memory_bytes: u64) -> Self {
        self.memory_bytes = memory_bytes;
        self
    }

    /// Parses `cpu=8,memory=16Gi,slots=32` (any subset; what is left out is zero, but
    /// `slots` defaults to 1 when absent).
    ///
    /// ```
    /// use dagforge::store::Capacity;
    /// let c = Capacity::parse("cpu=8,memory=16Gi,slots=32").unwrap();
    /// assert_eq!((c.cpu_millis, c.memory_bytes, c.slots), (8000, 16 << 30, 32));
    /// assert!(Capacity::parse("gpu=1").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Capacity, CapacityError> {
        let mut c = Capacity::ONE_SLOT;
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((k, v)) = part.split_once('=') else {
                return Err(CapacityError::NotPair(cut(part)));
            };
            match k.trim() {
                "cpu" => c.cpu_millis = cpu_millis(v.trim())?,
                "memory" => c.memory_bytes = memory_bytes(v.trim())?,
                "slots" => {
                    c.slots = v.trim().parse().map_err(|_| CapacityError::BadQuantity {
                        key: "slots",
                        value: cut(v),
                    })?;
                }
                other => return Err(CapacityError::UnknownKey(cut(other))),
            }
        }
        Ok(c)
    }

    /// One attempt's demand: one slot and the job's CPU and memory requests.
    pub fn of_resources(r: &Resources) -> Result<Capacity, CapacityError> {
        Ok(Capacity {
            cpu_millis: r.cpu.as_deref().map(cpu_millis).transpose()?.unwrap_or(0),
            memory_bytes: r
                .memory
                .as_deref()
                .map(memory_bytes)
                .transpose()?
                .unwrap_or(0),
            slots: 1,
        })
    }

    /// Whether `self` fits in `room`, resource by resource.
    pub fn fits_in(&self, room: &Capacity) -> bool {
        self.cpu_millis <= room.cpu_millis
            && self.memory_bytes <= room.memory_bytes
            && self.slots <= room.slots
    }

    /// `self` less `other`, resource by resource (never below zero).
    pub fn minus(&self, other: &Capacity) -> Capacity {
        Capacity {
            cpu_millis: self.cpu_millis.saturating_sub(other.cpu_millis),
            memory_bytes: self.memory_bytes.saturating_sub(other.memory_bytes),
            slots: self.slots.saturating_sub(other.slots),
        }
    }

    /// `self` plus `other`, resource by resource (saturating).
    pub fn plus(&self, other: &Capacity) -> Capacity {
        Capacity {
            cpu_millis: self.cpu_millis.saturating_add(other.cpu_millis),
            memory_bytes: self.memory_bytes.saturating_add(other.memory_bytes),
            slots: self.slots.saturating_add(other.slots),
        }
    }

    /// How full `used` makes `self`: the largest share of any resource `self` has, 0
    /// (idle) to 1 (full).
    pub fn load(&self, used: &Capacity) -> f64 {
        fn share(used: u64, all: u64) -> f64 {
            if all == 0 {
                0.0
            } else {
                (used as f64 / all as f64).min(1.0)
            }
        }
        share(used.cpu_millis, self.cpu_millis)
            .max(share(used.memory_bytes, self.memory_bytes))
            .max(share(u64::from(used.slots), u64::from(self.slots)))
    }
}

impl std::fmt::Display for Capacity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cpu = if self.cpu_millis.is_multiple_of(1000) {
            format!("{}", self.cpu_millis / 1000)
        } else {
            format!("{}m", self.cpu_millis)
        };
        let mem = match self.memory_bytes {
            b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{}Gi", b >> 30),
            b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{}Mi", b >> 20),
            b => b.to_string(),
        };
        write!(f, "cpu={cpu},memory={mem},slots={}", self.slots)
    }
}

fn cut(s: &str) -> String {
    s.chars().take(64).collect()
}

/// `500m` → 500, `2` → 2000, `0.5` → 500.
fn cpu_millis(v: &str) -> Result<u64, CapacityError> {
    let bad = || CapacityError::BadQuantity {
        key: "cpu",
        value: cut(v),
    };
    if v.len() > MAX_QUANTITY {
        return Err(bad());
    }
    if let Some(m) = v.strip_suffix('m') {
        return m.parse().map_err(|_| bad());
    }
    let cores: f64 = v.parse().map_err(|_| bad())?;
    if !cores.is_finite() || !(0.0..=1e9).contains(&cores) {
        return Err(bad());
    }
    Ok((cores * 1000.0).round() as u64)
}

/// `512Mi`, `16Gi`, `1G`, `100k`, `1024`.
fn memory_bytes(v: &str) -> Result<u64, CapacityError> {
    let bad = || CapacityError::BadQuantity {
        key: "memory",
        value: cut(v),
    };
    if v.len() > MAX_QUANTITY {
        return Err(bad());
    }
    let units: [(&str, u64); 10] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("k", 1_000),
        ("K", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
        ("", 1),
    ];
    for (suffix, unit) in units {
        if let Some(n) = v.strip_suffix(suffix) {
            if n.is_empty() {
                return Err(bad());
            }
            if let Ok(n) = n.parse::<u64>() {
                return n.checked_mul(unit).ok_or_else(bad);
            }
            let f: f64 = n.parse().map_err(|_| bad())?;
            let bytes = f * unit as f64;
            if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
                return Err(bad());
            }
            return Ok(bytes.round() as u64);
        }
    }
    Err(bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_parse() {
        assert_eq!(cpu_millis("500m"), Ok(500));
        assert_eq!(cpu_millis("2"), Ok(2000));
        assert_eq!(cpu_millis("0.25"), Ok(250));
        assert_eq!(memory_bytes("512Mi"), Ok(512 << 20));
        assert_eq!(memory_bytes("1G"), Ok(1_000_000_000));
        assert_eq!(memory_bytes("1.5Gi"), Ok(3 << 29));
        for bad in ["", "Gi", "x", "-1", "1e999", "99999999999999999999Ti"] {
            assert!(memory_bytes(bad).is_err(), "{bad}");
        }
        for bad in ["", "m", "-1", "nan", "inf"] {
            assert!(cpu_millis(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn capacities_parse_and_fit() {
        let c = Capacity::parse("cpu=2, memory=1Gi").unwrap();
        assert_eq!(c.slots, 1);
        assert_eq!(c.to_string(), "cpu=2,memory=1Gi,slots=1");
        assert!(matches!(
            Capacity::parse("cpu"),
            Err(CapacityError::NotPair(_))
        ));
        assert!(matches!(
            Capacity::parse("disk=1"),
            Err(CapacityError::UnknownKey(_))
        ));
        let d = Capacity::ONE_SLOT.with_cpu_millis(1500);
        assert!(d.fits_in(&c));
        assert!(!d.plus(&d).fits_in(&c));
        assert_eq!(c.minus(&d).cpu_millis, 500);
        assert!((c.load(&d) - 1.0).abs() < 1e-9, "the slot is full");
    }
}
