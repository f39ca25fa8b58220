//! The Prometheus alerting rules shipped in `docs/prometheus/` are valid and fire as documented
//! (`promtool check rules` and `promtool test rules`, Debian's `prometheus` package).

use std::path::Path;

fn promtool_says(args: &[&str]) {
    let Some(promtool) = crate::helpers::promtool() else { return };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/prometheus");
    let out = std::process::Command::new(&promtool).args(args).current_dir(&dir).output().expect("promtool runs");
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool {}: {printed}", args.join(" "));
    assert!(printed.contains("SUCCESS"), "promtool {}: {printed}", args.join(" "));
}

#[test]
fn the_alerting_rules_are_valid() {
    promtool_says(&["check", "rules", "alerts.yml"]);
}

#[test]
fn the_alerting_rules_fire_as_their_tests_say() {
    promtool_says(&["test", "rules", "alerts.test.yml"]);
}

/// Every series the Grafana dashboard reads is one `/metrics` serves (`counters::SERIES`, which a unit
/// test keeps equal to the registry).
#[test]
fn the_grafana_dashboard_reads_only_metrics_the_server_serves() {
    let served = helpline::chat::counters::SERIES;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/prometheus/grafana-dashboard.json");
    let text = std::fs::read_to_string(&path).expect("dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 6, "queue, waits, service level, counsellors, messages, commits");
    let mut exprs: Vec<String> = Vec::new();
    for panel in panels {
        for target in panel["targets"].as_array().expect("targets") {
            exprs.push(target["expr"].as_str().expect("expr").to_string());
        }
    }
    // The alerting rules read only served series too (and `up`, and node_exporter's filesystem series).
    let rules = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/prometheus/alerts.yml")).expect("rules");
    exprs.push(rules.lines().filter(|l| !l.trim_start().starts_with('#')).collect::<Vec<_>>().join("\n"));
    for expr in &exprs {
        let names: Vec<&str> =
            expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| w.starts_with("helpline_")).collect();
        assert!(!names.is_empty(), "{expr}");
        for name in names {
            assert!(served.contains(&name), "{name} is read but /metrics does not serve it: {expr}");
        }
    }
}
