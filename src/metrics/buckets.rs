//! A histogram whose counts can be read back (prometheus-client's cannot): request
//! latency, which Prometheus scrapes and GET_BROKER_RUNTIME_INFO reports, so that the
//! dashboard can chart percentiles between two of its samples.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counts of observations per bucket, and their sum.
#[derive(Debug)]
pub struct Buckets {
    /// Upper bounds, ascending; a last bucket takes everything above.
    bounds: &'static [f64],
    /// Per bucket, not cumulative; one more than `bounds`.
    counts: Vec<AtomicU64>,
    /// Sum of observations, in millionths of their unit.
    sum_micros: AtomicU64,
}

/// A reading of [`Buckets`]: `(upper bound, count)` per bucket (not cumulative; the
/// last bound is `f64::MAX`), and the sum.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    pub buckets: Vec<(f64, u64)>,
    pub sum: f64,
}

impl Buckets {
    pub fn new(bounds: &'static [f64]) -> Self {
        assert!(
            bounds.windows(2).all(|w| w[0] < w[1]),
            "bucket bounds must ascend"
        );
        Buckets {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, v: f64) {
        let i = self.bounds.partition_point(|b| *b < v);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((v.max(0.0) * 1e6) as u64, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        let buckets = self
            .bounds
            .iter()
            .copied()
            .chain([f64::MAX])
            .zip(&self.counts)
            .map(|(bound, n)| (bound, n.load(Ordering::Relaxed)))
            .collect();
        Snapshot {
            buckets,
            sum: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

impl Snapshot {
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|(_, n)| n).sum()
    }

    /// Adds `other`'s counts (same bounds) to these.
    pub fn add(&mut self, other: &Snapshot) {
        if self.buckets.is_empty() {
            *self = other.clone();
            return;
        }
        assert_eq!(self.buckets.len(), other.buckets.len(), "same bounds");
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            mine.1 += theirs.1;
        }
        self.sum += other.sum;
    }

    /// What was observed since `earlier` (a reading of the same buckets).
    pub fn since(&self, earlier: &Snapshot) -> Snapshot {
        if earlier.buckets.len() != self.buckets.len() {
            return self.clone();
        }
        Snapshot {
            buckets: self
                .buckets
                .iter()
                .zip(&earlier.buckets)
                .map(|((bound, now), (_, then))| (*bound, now.saturating_sub(*then)))
                .collect(),
            sum: (self.sum - earlier.sum).max(0.0),
        }
    }

    /// The upper bound of the bucket holding quantile `q` (0..=1): an upper estimate,
    /// as Prometheus' `histogram_quantile` without interpolation. `None` when empty;
    /// `f64::MAX` when it is past the last bound.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (bound, n) in &self.buckets {
            seen += n;
            if seen >= rank {
                return Some(*bound);
            }
        }
        self.buckets.last().map(|(b, _)| *b)
    }

    /// As text for GET_BROKER_RUNTIME_INFO: `bound:count,...,+Inf:count;sum`.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        for (i, (bound, n)) in self.buckets.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            if *bound == f64::MAX {
                out.push_str(&format!("+Inf:{n}"));
            } else {
                out.push_str(&format!("{bound}:{n}"));
            }
        }
        out.push_str(&format!(";{}", self.sum));
        out
    }

    /// Reads [`Snapshot::encode`]'s text.
    pub fn decode(text: &str) -> Option<Snapshot> {
        let (buckets, sum) = text.split_once(';')?;
        let buckets = buckets
            .split(',')
            .map(|pair| {
                let (bound, n) = pair.split_once(':')?;
                let bound = if bound == "+Inf" {
                    f64::MAX
                } else {
                    bound.parse().ok()?
                };
                Some((bound, n.parse().ok()?))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Snapshot {
            buckets,
            sum: sum.parse().ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_the_counts_between_two_readings() {
        static BOUNDS: [f64; 3] = [1.0, 10.0, 100.0];
        let b = Buckets::new(&BOUNDS);
        for v in [0.5, 0.5, 5.0] {
            b.observe(v);
        }
        let first = b.snapshot();
        for v in [50.0, 50.0, 50.0, 500.0] {
            b.observe(v);
        }
        let now = b.snapshot();
        assert_eq!(now.count(), 7);
        assert_eq!(first.quantile(0.5), Some(1.0));
        let between = now.since(&first);
        assert_eq!(between.count(), 4);
        assert_eq!(between.quantile(0.5), Some(100.0));
        assert_eq!(between.quantile(0.99), Some(f64::MAX));
        assert!((between.sum - 650.0).abs() < 1e-6);
        let text = now.encode();
        assert_eq!(Snapshot::decode(&text).unwrap(), now, "{text}");
        assert_eq!(Snapshot::default().quantile(0.5), None);
        let mut total = Snapshot::default();
        total.add(&first);
        total.add(&first);
        assert_eq!(total.count(), 6);
    }
}
