//! The run's trace, its hash, and the summary of what happened.
//!
//! A trace is text, one event a line: `<time> <host> <what>`. The SHA-256 of all lines
//! (each followed by `\n`) is the run's fingerprint: the same seed must give the same
//! hash.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::host::Instant;

/// The trace of one run.
pub struct Trace {
    hasher: Sha256,
    lines: Option<Vec<String>>,
    file: Option<BufWriter<File>>,
    count: u64,
}

impl std::fmt::Debug for Trace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trace").field("count", &self.count).finish()
    }
}

impl Default for Trace {
    fn default() -> Self {
        Trace::new()
    }
}

/// Format a time for the trace: seconds with nanosecond precision, fixed width.
pub fn format_time(t: Instant) -> String {
    let n = t.as_nanos();
    format!("{:>4}.{:09}", n / 1_000_000_000, n % 1_000_000_000)
}

impl Trace {
    /// A trace that only hashes.
    pub fn new() -> Trace {
        Trace {
            hasher: Sha256::new(),
            lines: None,
            file: None,
            count: 0,
        }
    }

    /// Also keep every line in memory (for [`Trace::lines`], snapshots and
    /// determinism checks).
    pub fn keep_lines(mut self) -> Trace {
        self.lines = Some(Vec::new());
        self
    }

    /// Also write every line to `path`.
    pub fn write_to(mut self, path: &Path) -> io::Result<Trace> {
        self.file = Some(BufWriter::new(File::create(path)?));
        Ok(self)
    }

    /// Record one event.
    pub fn record(&mut self, now: Instant, host: &str, what: &str) {
        let line = format!("{} {host} {what}", format_time(now));
        Digest::update(&mut self.hasher, line.as_bytes());
        Digest::update(&mut self.hasher, b"\n");
        self.count += 1;
        if let Some(f) = &mut self.file {
            // A failing trace file must not change the run; report it once at finish.
            let _ = writeln!(f, "{line}");
        }
        if let Some(lines) = &mut self.lines {
            lines.push(line);
        }
    }

    /// The lines kept so far (empty unless [`Trace::keep_lines`]).
    pub fn lines(&self) -> &[String] {
        self.lines.as_deref().unwrap_or(&[])
    }

    /// How many lines were recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The SHA-256 of the trace so far, as hex.
    pub fn hash_hex(&self) -> String {
        let digest: [u8; 32] = self.hasher.clone().finalize().into();
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Flush the trace file, if any.
    pub fn flush(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

/// Counts of what happened in a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Trace events by kind (the first word of `<what>`).
    pub events: BTreeMap<String, u64>,
    /// Bytes delivered to hosts over links.
    pub bytes_delivered: u64,
    /// Link closes by reason, counted per end told (a link closed at both ends counts 2).
    pub closes: BTreeMap<String, u64>,
    /// Dials that never connected, by reason.
    pub dial_failures: BTreeMap<String, u64>,
}

impl Summary {
    /// Count one event of `kind`.
    pub fn count_event(&mut self, kind: &str) {
        *self.events.entry(kind.to_string()).or_default() += 1;
    }

    /// Count one link close for `reason`.
    pub fn count_close(&mut self, reason: &str) {
        *self.closes.entry(reason.to_string()).or_default() += 1;
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "events:")?;
        for (k, v) in &self.events {
            writeln!(f, "  {k:<12} {v}")?;
        }
        writeln!(f, "bytes delivered: {}", self.bytes_delivered)?;
        writeln!(f, "link closes:")?;
        for (k, v) in &self.closes {
            writeln!(f, "  {k:<12} {v}")?;
        }
        writeln!(f, "dial failures:")?;
        for (k, v) in &self.dial_failures {
            writeln!(f, "  {k:<12} {v}")?;
        }
        Ok(())
    }
}

/// Samples and time series hosts report (through the world's event hook).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    /// Named sample sets, e.g. latencies in milliseconds.
    pub samples: BTreeMap<String, Vec<f64>>,
    /// Named time series of (seconds, value).
    pub series: BTreeMap<String, Vec<(f64, f64)>>,
    /// Named counters, e.g. `circuit_failed/CHANNEL_CLOSED`.
    pub counts: BTreeMap<String, u64>,
}

impl Metrics {
    /// Add a sample to the set `name`.
    pub fn sample(&mut self, name: &str, value: f64) {
        self.samples
            .entry(name.to_string())
            .or_default()
            .push(value);
    }

    /// Add `n` to the counter `name`.
    pub fn count(&mut self, name: &str, n: u64) {
        *self.counts.entry(name.to_string()).or_default() += n;
    }

    /// Add a point at time `now` to the series `name`.
    pub fn point(&mut self, name: &str, now: Instant, value: f64) {
        let t = now.as_nanos() as f64 / 1e9;
        self.series
            .entry(name.to_string())
            .or_default()
            .push((t, value));
    }
}

/// p50, p90 and p99 of a sample set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percentiles {
    /// Number of samples.
    pub count: usize,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// The `q`-quantile (0..=1) of sorted samples, nearest-rank.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.saturating_sub(1)).copied()
}

/// p50/p90/p99 of `samples` (nearest-rank), or `None` if there are none. NaNs sort last.
pub fn percentiles(samples: &[f64]) -> Option<Percentiles> {
    let mut s = samples.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    Some(Percentiles {
        count: s.len(),
        p50: quantile(&s, 0.50)?,
        p90: quantile(&s, 0.90)?,
        p99: quantile(&s, 0.99)?,
    })
}

/// Where two traces first differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    /// 1-based line number.
    pub line: usize,
    /// The line in the first run (`None` if it ended first).
    pub first: Option<String>,
    /// The line in the second run (`None` if it ended first).
    pub second: Option<String>,
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |l: &Option<String>| l.clone().unwrap_or_else(|| "<end of trace>".into());
        write!(
            f,
            "runs diverge at line {}:\n  first:  {}\n  second: {}",
            self.line,
            show(&self.first),
            show(&self.second)
        )
    }
}

/// The first line where two traces differ, if any.
pub fn first_difference(a: &[String], b: &[String]) -> Option<Divergence> {
    let n = a.len().max(b.len());
    (0..n).find_map(|i| {
        let (x, y) = (a.get(i), b.get(i));
        (x != y).then(|| Divergence {
            line: i + 1,
            first: x.cloned(),
            second: y.cloned(),
        })
    })
}

/// Run a simulation twice and compare traces: `Ok(hash)` if identical, else the first
/// differing line. `run` returns the run's trace lines (kept with [`Trace::keep_lines`]).
pub fn check_determinism(mut run: impl FnMut() -> Vec<String>) -> Result<String, Divergence> {
    let a = run();
    let b = run();
    match first_difference(&a, &b) {
        Some(d) => Err(d),
        None => {
            let mut h = Sha256::new();
            for l in &a {
                Digest::update(&mut h, l.as_bytes());
                Digest::update(&mut h, b"\n");
            }
            let digest: [u8; 32] = h.finalize().into();
            Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_nearest_rank() {
        let s: Vec<f64> = (1..=100).map(f64::from).collect();
        let p = percentiles(&s).unwrap();
        assert_eq!((p.p50, p.p90, p.p99, p.count), (50.0, 90.0, 99.0, 100));
        assert_eq!(percentiles(&[]), None);
        assert_eq!(percentiles(&[3.0]).unwrap().p99, 3.0);
    }

    #[test]
    fn hash_matches_determinism_check() {
        let mut t = Trace::new().keep_lines();
        t.record(Instant::from_millis(1500), "a", "up L1");
        assert_eq!(t.lines(), ["   1.500000000 a up L1"]);
        let lines = t.lines().to_vec();
        assert_eq!(check_determinism(|| lines.clone()), Ok(t.hash_hex()));
    }

    #[test]
    fn reports_first_difference() {
        let mut n = 0;
        let d = check_determinism(|| {
            n += 1;
            vec!["x".into(), format!("run {n}")]
        })
        .unwrap_err();
        assert_eq!(d.line, 2);
        assert_eq!(d.second.as_deref(), Some("run 2"));
    }
}
