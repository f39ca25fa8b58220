//! What a run measured: printed as a table, written as JSON.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::procfs::Usage;
use crate::stats::Summary;

/// One scenario step against one target.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub scenario: String,
    /// `helpline (sqlite)`, `helpline (postgres)` or `bare`.
    pub target: String,
    /// The step's parameters (rate, conversations, …).
    pub params: BTreeMap<String, serde_json::Value>,
    pub duration_s: f64,
    /// Main throughput figure, with its unit in `throughput_unit`.
    pub throughput: f64,
    pub throughput_unit: String,
    /// Named latencies.
    pub latencies: BTreeMap<String, Summary>,
    /// Counters: sent, acked, received, errors, lost, duplicated, out_of_order, double_offers, …
    pub counters: BTreeMap<String, u64>,
    /// Figures that are not latencies nor counts (RSS per socket, storm time, …).
    pub figures: BTreeMap<String, f64>,
    pub server: Option<Usage>,
    pub client: Option<Usage>,
    pub notes: Vec<String>,
}

/// Counters that must be zero for a run to pass.
pub const MUST_BE_ZERO: &[&str] =
    &["errors", "lost", "duplicated", "out_of_order", "double_offers", "double_rings", "over_capacity", "bad_acks"];

impl Report {
    pub fn new(scenario: &str, target: &str) -> Report {
        let mut r = Report { scenario: scenario.into(), target: target.into(), ..Default::default() };
        // Other work on the machine distorts the figures: keep the load average beside them.
        if let Some(l) = std::fs::read_to_string("/proc/loadavg").ok().and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok()) {
            r.figures.insert("loadavg_1m_before".into(), l);
        }
        r
    }
    pub fn param(&mut self, k: &str, v: impl Serialize) -> &mut Self {
        self.params.insert(k.into(), serde_json::to_value(v).unwrap_or_default());
        self
    }
    pub fn count(&mut self, k: &str, v: u64) {
        self.counters.insert(k.into(), v);
    }
    pub fn counter(&self, k: &str) -> u64 {
        self.counters.get(k).copied().unwrap_or(0)
    }
    /// Non-zero counters that must be zero.
    pub fn failures(&self) -> Vec<String> {
        MUST_BE_ZERO
            .iter()
            .filter(|k| self.counter(k) > 0)
            .map(|k| format!("{k} = {}", self.counter(k)))
            .collect()
    }

    /// A human-readable table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let params: Vec<String> = self.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        s += &format!("== {} on {} ({})\n", self.scenario, self.target, params.join(" "));
        s += &format!(
            "   duration {:.1} s   throughput {:.1} {}\n",
            self.duration_s, self.throughput, self.throughput_unit
        );
        if !self.latencies.is_empty() {
            s += &format!(
                "   {:<24} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
                "latency (ms)", "count", "p50", "p90", "p99", "p99.9", "max"
            );
            for (name, l) in &self.latencies {
                s += &format!(
                    "   {:<24} {:>9} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}\n",
                    name, l.count, l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms
                );
            }
        }
        let counters: Vec<String> = self.counters.iter().map(|(k, v)| format!("{k}={v}")).collect();
        s += &format!("   counters: {}\n", counters.join(" "));
        if !self.figures.is_empty() {
            let f: Vec<String> = self.figures.iter().map(|(k, v)| format!("{k}={v:.2}")).collect();
            s += &format!("   figures: {}\n", f.join(" "));
        }
        if let Some(u) = &self.server {
            s += &format!(
                "   server pid {}: cpu {:.0}% of a core, rss {} -> {} KiB (peak {} KiB)\n",
                u.pid, u.cpu_pct, u.rss_start_kib, u.rss_end_kib, u.hwm_kib
            );
        }
        if let Some(u) = &self.client {
            s += &format!("   load generator: cpu {:.0}% of a core, rss {} KiB\n", u.cpu_pct, u.rss_end_kib);
        }
        for n in &self.notes {
            s += &format!("   note: {n}\n");
        }
        let failures = self.failures();
        s += &format!("   result: {}\n", if failures.is_empty() { "PASS (no errors, nothing lost or doubled)".into() } else { format!("FAIL: {}", failures.join(", ")) });
        s
    }
}

/// Ratio lines `helpline / bare` for matching steps of the same run.
pub fn ratios(reports: &[Report]) -> Vec<String> {
    let mut lines = Vec::new();
    for r in reports.iter().filter(|r| r.target != "bare") {
        let Some(b) = reports
            .iter()
            .find(|b| b.target == "bare" && b.scenario == r.scenario && b.params.get("rate") == r.params.get("rate"))
        else {
            continue;
        };
        let mut parts = Vec::new();
        for (name, l) in &r.latencies {
            if let Some(bl) = b.latencies.get(name) {
                let ratio = |x: f64, y: f64| if y > 0.0 { format!("{:.1}x", x / y) } else { "-".into() };
                parts.push(format!(
                    "{name}: p50 {} p99 {} p99.9 {}",
                    ratio(l.p50_ms, bl.p50_ms),
                    ratio(l.p99_ms, bl.p99_ms),
                    ratio(l.p999_ms, bl.p999_ms)
                ));
            }
        }
        if b.throughput > 0.0 {
            parts.push(format!("throughput {:.2}x", r.throughput / b.throughput));
        }
        if let (Some(s), Some(bs)) = (&r.server, &b.server) {
            if bs.cpu_pct > 0.0 {
                parts.push(format!("server cpu {:.1}x", s.cpu_pct / bs.cpu_pct));
            }
        }
        lines.push(format!("ratio {} / bare at rate {}: {}", r.target, r.params.get("rate").cloned().unwrap_or_default(), parts.join("; ")));
    }
    lines
}
