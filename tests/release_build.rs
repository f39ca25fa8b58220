//! What a release build must not carry, checked on the manifest: the fault injection points
//! (`FAILPOINTS`, the `fail` crate's `failpoints` feature) exist only in test builds. With the
//! feature on a normal dependency, a test setting copied to production (`relay-after-commit=
//! return(KILLME)`) would let any caller who types KILLME abort the server. (Checked on a release
//! binary by hand: it relays a message containing KILLME and stays up; see docs/deployment.md.)

fn section<'a>(manifest: &'a str, name: &str) -> &'a str {
    let start = manifest.find(&format!("\n[{name}]\n")).unwrap_or_else(|| panic!("Cargo.toml has no [{name}]"));
    let body = &manifest[start + name.len() + 4..];
    body.find("\n[").map_or(body, |end| &body[..end])
}

fn fail_line(section: &str) -> Option<&str> {
    section.lines().find(|l| l.trim_start().starts_with("fail ") || l.trim_start().starts_with("fail="))
}

#[test]
fn fault_injection_points_are_in_test_builds_only() {
    let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).expect("Cargo.toml");
    let normal = fail_line(section(&manifest, "dependencies")).expect("`fail` is a dependency");
    assert!(!normal.contains("failpoints"), "the normal dependency turns fault injection on in release builds: {normal}");
    let dev = fail_line(section(&manifest, "dev-dependencies")).expect("`fail` is a dev-dependency");
    assert!(dev.contains("failpoints"), "tests need the fault injection points: {dev}");
    // And this test build has them (the failover tests arm `relay-after-commit`).
    assert!(fail::has_failpoints());
}
