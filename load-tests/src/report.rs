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
pub const MUST_BE_ZERO: &[&str] = &[
    "errors",
    "lost",
    "unacked",
    "duplicated",
    "out_of_order",
    "double_offers",
    "double_rings",
    "over_capacity",
    "bad_acks",
    "unseen_by_supervisors",
];

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
        MUST_BE_ZERO.iter().filter(|k| self.counter(k) > 0).map(|k| format!("{k} = {}", self.counter(k))).collect()
    }

    /// A human-readable table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let params: Vec<String> = self.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        s += &format!("== {} on {} ({})\n", self.scenario, self.target, params.join(" "));
        s += &format!("   duration {:.1} s   throughput {:.1} {}\n", self.duration_s, self.throughput, self.throughput_unit);
        if !self.latencies.is_empty() {
            s += &format!("   {:<24} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n", "latency (ms)", "count", "p50", "p90", "p99", "p99.9", "max");
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
        s += &format!(
            "   result: {}\n",
            if failures.is_empty() { "PASS (no errors, nothing lost or doubled)".into() } else { format!("FAIL: {}", failures.join(", ")) }
        );
        s
    }
}

/// Targets that are baselines, not the system under test.
fn is_baseline(target: &str) -> bool {
    target == "bare" || target.starts_with("prosody")
}

impl Report {
    /// A run against a real peer (Prosody), not against helpline or the bare relay.
    pub fn is_peer(&self) -> bool {
        self.target.starts_with("prosody")
    }
}

fn ratio(x: f64, y: f64) -> String {
    if y > 0.0 && x / y < 0.1 {
        format!("{:.4}x", x / y)
    } else if y > 0.0 {
        format!("{:.2}x", x / y)
    } else {
        "-".into()
    }
}

/// Ratio lines `helpline / bare` and `helpline / prosody` for matching steps (same scenario and
/// rate) of the same run, and the best throughput of each against each baseline's best.
pub fn ratios(reports: &[Report]) -> Vec<String> {
    let mut lines = Vec::new();
    for r in reports.iter().filter(|r| !is_baseline(&r.target)) {
        for b in
            reports.iter().filter(|b| is_baseline(&b.target) && b.scenario == r.scenario && b.params.get("rate") == r.params.get("rate"))
        {
            let mut parts = Vec::new();
            for (name, l) in &r.latencies {
                if let Some(bl) = b.latencies.get(name) {
                    parts.push(format!(
                        "{name}: p50 {} p99 {} p99.9 {}",
                        ratio(l.p50_ms, bl.p50_ms),
                        ratio(l.p99_ms, bl.p99_ms),
                        ratio(l.p999_ms, bl.p999_ms)
                    ));
                }
            }
            if b.throughput > 0.0 {
                parts.push(format!("throughput {}", ratio(r.throughput, b.throughput)));
            }
            if let (Some(s), Some(bs)) = (&r.server, &b.server) {
                if bs.cpu_pct > 0.0 {
                    parts.push(format!("server cpu {}", ratio(s.cpu_pct, bs.cpu_pct)));
                }
            }
            lines.push(format!(
                "ratio {} / {} at rate {}: {}",
                r.target,
                b.target,
                r.params.get("rate").cloned().unwrap_or_default(),
                parts.join("; ")
            ));
        }
    }
    // Best acked throughput of any step: the saturation figure when the steps reach it.
    let best = |pred: &dyn Fn(&Report) -> bool| {
        reports.iter().filter(|r| pred(r) && r.throughput_unit == "acked msg/s").map(|r| r.throughput).fold(0.0f64, f64::max)
    };
    let mut targets: Vec<&str> = reports.iter().filter(|r| r.scenario == "relay").map(|r| r.target.as_str()).collect();
    targets.sort_unstable();
    targets.dedup();
    for t in targets.iter().filter(|t| !is_baseline(t)) {
        let mine = best(&|r: &Report| r.target == *t);
        for b in targets.iter().filter(|b| is_baseline(b)) {
            let theirs = best(&|r: &Report| r.target == *b);
            lines.push(format!("ratio {t} / {b}, best acked msg/s of the run: {mine:.0} / {theirs:.0} = {}", ratio(mine, theirs)));
        }
    }
    lines
}
