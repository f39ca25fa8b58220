//! Prometheus metrics: counters and histograms recorded where things happen; gauges are set at scrape
//! time by `edge::prometheus` (`GET /metrics`).

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

pub type Labels = Vec<(String, String)>;

pub fn label(key: &str, value: &str) -> Labels {
    vec![(key.to_string(), value.to_string())]
}

fn answer_histogram() -> Histogram {
    // 0.25 s … 128 s: the 15 s target sits in the middle.
    Histogram::new(exponential_buckets(0.25, 2.0, 10))
}

fn commit_histogram() -> Histogram {
    // 0.1 ms … 3.3 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// Every series `/metrics` serves (Prometheus's classic names: a counter's `_total`, a histogram's
/// `_bucket`, `_count`, `_sum`), for checking the dashboards and alert rules in `docs/prometheus/`
/// (a family with no sample yet is not in the scrape). A unit test keeps it equal to the registry.
pub const SERIES: &[&str] = &[
    "helpline_offers_total",
    "helpline_answered_total",
    "helpline_abandoned_total",
    "helpline_time_to_answer_seconds_bucket",
    "helpline_time_to_answer_seconds_count",
    "helpline_time_to_answer_seconds_sum",
    "helpline_db_commit_seconds_bucket",
    "helpline_db_commit_seconds_count",
    "helpline_db_commit_seconds_sum",
    "helpline_messages_total",
    "helpline_messages_refused_total",
    "helpline_queue_waiting",
    "helpline_queue_longest_wait_seconds",
    "helpline_counsellors",
    "helpline_sockets",
];

/// The process's metrics (one registry per process, as Prometheus expects).
pub struct Metrics {
    pub registry: Registry,
    pub offers: Family<Labels, Counter>,
    pub answered: Family<Labels, Counter>,
    pub abandoned: Family<Labels, Counter>,
    pub time_to_answer: Family<Labels, Histogram, fn() -> Histogram>,
    pub commit_seconds: Family<Labels, Histogram, fn() -> Histogram>,
    pub messages: Counter,
    pub messages_refused: Family<Labels, Counter>,
    pub queue_waiting: Family<Labels, Gauge>,
    pub longest_wait: Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub counsellors: Family<Labels, Gauge>,
    pub sockets: Family<Labels, Gauge>,
}

/// The metrics of this process.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let mut registry = Registry::with_prefix("helpline");
    let m = Metrics {
        offers: Family::default(),
        answered: Family::default(),
        abandoned: Family::default(),
        time_to_answer: Family::new_with_constructor(answer_histogram),
        commit_seconds: Family::new_with_constructor(commit_histogram),
        messages: Counter::default(),
        messages_refused: Family::default(),
        queue_waiting: Family::default(),
        longest_wait: Family::default(),
        counsellors: Family::default(),
        sockets: Family::default(),
        registry: Registry::default(),
    };
    registry.register("offers", "Offers rung to counsellors", m.offers.clone());
    registry.register("answered", "Contacts answered (assigned to a counsellor)", m.answered.clone());
    registry.register("abandoned", "Contacts that ended while waiting", m.abandoned.clone());
    registry.register("time_to_answer_seconds", "Queue entry to answer", m.time_to_answer.clone());
    registry.register("db_commit_seconds", "Database commit time of routing steps and message batches", m.commit_seconds.clone());
    registry.register("messages", "Chat messages stored", m.messages.clone());
    registry.register(
        "messages_refused",
        "Chat messages refused as overloaded (the client sends them again) by reason: queue_full, taken_late, not_answered_in_time",
        m.messages_refused.clone(),
    );
    registry.register("queue_waiting", "Contacts waiting now", m.queue_waiting.clone());
    registry.register("queue_longest_wait_seconds", "Longest wait now", m.longest_wait.clone());
    registry.register("counsellors", "Counsellors by board state", m.counsellors.clone());
    registry.register("sockets", "Open WebSockets by kind", m.sockets.clone());
    Metrics { registry, ..m }
});

impl Metrics {
    pub fn offer(&self, helpline: &str) {
        self.offers.get_or_create(&label("helpline", helpline)).inc();
    }
    pub fn answer(&self, helpline: &str, waited_ms: i64) {
        self.answered.get_or_create(&label("helpline", helpline)).inc();
        self.time_to_answer.get_or_create(&label("helpline", helpline)).observe(waited_ms.max(0) as f64 / 1000.0);
    }
    pub fn abandon(&self, helpline: &str) {
        self.abandoned.get_or_create(&label("helpline", helpline)).inc();
    }
    /// A chat message refused as `overloaded` ([`crate::chat::promise`]), `n` times.
    pub fn refused(&self, reason: &str, n: u64) {
        self.messages_refused.get_or_create(&label("reason", reason)).inc_by(n);
    }
    /// Records how long a commit of `what` (`routing` or `messages`) took.
    pub fn commit(&self, what: &str, took: Duration) {
        self.commit_seconds.get_or_create(&label("what", what)).observe(took.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_names_every_series_of_the_registry() {
        let m = &*METRICS;
        m.offer("x");
        m.answer("x", 1);
        m.abandon("x");
        m.refused("x", 1);
        m.commit("x", Duration::from_millis(1));
        m.messages.inc();
        m.queue_waiting.get_or_create(&label("helpline", "x")).set(0);
        m.longest_wait.get_or_create(&label("helpline", "x")).set(0.0);
        m.counsellors.get_or_create(&label("state", "x")).set(0);
        m.sockets.get_or_create(&label("kind", "x")).set(0);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &m.registry).expect("encode");
        let mut names: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(['{', ' ']).next())
            .filter(|n| !n.ends_with("_created"))
            .collect();
        names.sort_unstable();
        names.dedup();
        let mut expected = SERIES.to_vec();
        expected.sort_unstable();
        assert_eq!(names, expected);
    }
}
