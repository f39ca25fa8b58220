//! The layers of `src/`, enforced: reads every `.rs` file under `src/`, finds each `crate::…` path it
//! uses, and fails on a path that breaks a rule of `ARCHITECTURE.md` (section "Layers"), naming the
//! file, the module it reached for and the rule. It also fails on an import cycle between top-level
//! modules and on more than 16 entries at the top of `src/`.
//!
//! The rules live in [`RULES`]: for each top-level module, the modules it may use and why the others
//! are out of bounds. A new top-level module must be added there (the test fails until it is).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One top-level module: what it may use from the crate, and the rule that says so.
struct Rule {
    module: &'static str,
    may_use: &'static [&'static str],
    why: &'static str,
}

const LEAVES: &[&str] = &["protocol", "routing", "clock"];

/// The layers, top down. `app` may use everything.
const RULES: &[Rule] = &[
    Rule {
        module: "app",
        may_use: &[
            "edge",
            "casework",
            "telephony",
            "supervision",
            "safety",
            "state",
            "cluster",
            "chat",
            "auth",
            "store",
            "protocol",
            "routing",
            "clock",
        ],
        why: "the wiring may know everything",
    },
    Rule {
        module: "edge",
        may_use: &[
            "casework",
            "telephony",
            "supervision",
            "safety",
            "state",
            "cluster",
            "chat",
            "auth",
            "store",
            "protocol",
            "routing",
            "clock",
        ],
        why: "the edges (HTTP, WebSocket) do not know the wiring (`app`)",
    },
    Rule {
        module: "telephony",
        may_use: &["casework", "safety", "state", "chat", "auth", "store", "protocol", "routing", "clock"],
        why: "a domain does not know the edges, the wiring, the cluster transport or a domain that uses it",
    },
    Rule {
        module: "safety",
        may_use: &["casework", "state", "chat", "auth", "store", "protocol", "routing", "clock"],
        why: "a domain does not know the edges, the wiring, the cluster transport or a domain that uses it",
    },
    Rule {
        module: "casework",
        may_use: &["state", "chat", "auth", "store", "protocol", "routing", "clock"],
        why: "a domain does not know the edges, the wiring, the cluster transport or a domain that uses it",
    },
    Rule {
        module: "supervision",
        may_use: &["state", "chat", "auth", "store", "protocol", "routing", "clock"],
        why: "a domain does not know the edges, the wiring, the cluster transport or another domain",
    },
    Rule {
        module: "state",
        may_use: &["cluster", "chat", "auth", "store", "protocol", "routing", "clock"],
        why: "the shared state holds handles of the layers below; it knows no domain, edge or the wiring",
    },
    Rule {
        module: "cluster",
        may_use: &["chat", "store", "protocol", "routing", "clock"],
        why: "the cluster transport carries the core's commands; it knows no domain, edge, shared state or the wiring",
    },
    Rule {
        module: "chat",
        may_use: &["store", "protocol", "routing", "clock"],
        why: "the chat core does not know the cluster transport, telephony's webhook, HTTP, the shared state or any domain or edge",
    },
    Rule { module: "auth", may_use: &["store", "clock"], why: "authentication knows only the store and the clock" },
    Rule {
        module: "store",
        may_use: &["protocol", "routing", "clock"],
        why: "the store does not know domain rules, the core, the shared state or any edge",
    },
    Rule { module: "protocol", may_use: &[], why: "the protocol is a leaf: plain wire types" },
    Rule { module: "routing", may_use: &[], why: "the routing engine is pure: it knows no other module" },
    Rule { module: "clock", may_use: &[], why: "the clock is a leaf" },
];

/// The store's views by concern (`store.cases()`, ARCHITECTURE.md, Layers: "The store's views"), each
/// with the store modules whose types and functions belong to it (`store::users::Role` is the
/// `accounts` view's). `figures` has no accessor: its reads are the functions of `store::figures`.
const STORE_VIEWS: &[(&str, &[&str])] = &[
    ("abuse", &["abuse"]),
    ("accounts", &["users"]),
    ("audit_log", &["audit"]),
    ("calls", &["calls"]),
    ("cases", &["cases", "tasks", "transfers"]),
    ("commands", &["commands"]),
    ("contacts", &["contacts", "continuity"]),
    ("directory", &["helplines", "defaults"]),
    ("exchanges", &["gateways"]),
    ("fencing", &["cluster"]),
    ("figures", &["figures"]),
    ("forms", &["forms"]),
    ("messages", &["messages"]),
    ("placements", &["services"]),
    ("privacy", &["privacy", "erasures"]),
    ("backup", &["backup"]),
    ("referrals", &["referrals"]),
    ("retention", &["retention"]),
    ("rollups", &["rollup"]),
    ("secrets", &["secrets"]),
    ("sessions", &["sessions"]),
    ("surveys", &["surveys"]),
    ("canned", &["canned"]),
    ("channels", &["channels"]),
];

/// Views without an accessor on `Store` (named only by their module's path).
const VIEWS_WITHOUT_ACCESSOR: &[&str] = &["figures"];

/// Which of the store's views each layer below the wiring may name (`app` and the store itself name
/// any). A layer not listed names none.
const VIEW_RULES: &[(&str, &[&str])] = &[
    (
        "edge",
        &["abuse", "accounts", "audit_log", "commands", "contacts", "exchanges", "secrets", "sessions", "surveys", "canned", "channels"],
    ),
    ("telephony", &["abuse", "accounts", "audit_log", "calls", "commands", "contacts", "directory", "exchanges", "secrets"]),
    (
        "safety",
        &[
            "abuse",
            "accounts",
            "audit_log",
            "calls",
            "cases",
            "contacts",
            "forms",
            "messages",
            "placements",
            "privacy",
            "retention",
            "secrets",
        ],
    ),
    ("casework", &["accounts", "audit_log", "cases", "contacts", "directory", "forms", "placements", "referrals"]),
    ("supervision", &["accounts", "directory", "figures", "rollups", "surveys"]),
    ("state", &["accounts", "audit_log", "cases", "contacts", "directory", "placements", "sessions"]),
    ("cluster", &["accounts", "commands", "directory", "fencing"]),
    ("chat", &["accounts", "audit_log", "calls", "commands", "contacts", "directory", "messages"]),
    ("auth", &["accounts"]),
];

/// Crates the pure routing engine may not use: no runtime, no I/O.
const ROUTING_FORBIDS: &[&str] = &["tokio", "sqlx", "redis", "axum", "reqwest", "std::time::SystemTime", "std::net", "std::fs"];

/// Parts of a layer held to narrower rules than their layer: (path under `src/`, the modules they may
/// use, why).
const PART_RULES: &[(&str, &[&str], &str)] = &[(
    "edge/asterisk",
    &["protocol"],
    "the Asterisk adapter (`helpline asterisk`) is a process of its own beside Asterisk: it speaks the gateway protocol to the hub and knows no engine, store, shared state or other edge",
)];

/// Parts held to be pure like the routing engine (no runtime, database, network or files): rules as a
/// state machine, the time passed in.
const PURE_PARTS: &[&str] = &["edge/asterisk/machine", "edge/channels/rules"];

/// Most entries at the top of `src/`.
const MAX_TOP_ENTRIES: usize = 16;

/// A broken rule: the file, the module it used, the rule.
#[derive(Debug, PartialEq, Eq)]
struct Violation {
    file: String,
    uses: String,
    rule: String,
}

/// Removes comments, string literals and character literals, keeping line structure, so that only
/// code is scanned for paths.
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if b[i] == b'\n' {
                        out.push('\n');
                    }
                    i += 1;
                }
            }
        } else if c == b'r' && (b.get(i + 1) == Some(&b'"') || (b.get(i + 1) == Some(&b'#') && !is_ident(b.get(i.wrapping_sub(1))))) {
            // A raw string: r"…", r#"…"#, …
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push(c as char);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == b'"' && b[j + 1..].iter().take(hashes).filter(|&&h| h == b'#').count() == hashes {
                    j += 1 + hashes;
                    break;
                }
                if b[j] == b'\n' {
                    out.push('\n');
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                if i < b.len() && b[i] == b'\n' {
                    out.push('\n');
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == b'\'' {
            // A character literal ('x', '\n', '\''), or a lifetime ('a): only the former is skipped.
            if b.get(i + 1) == Some(&b'\\') {
                let mut j = i + 2;
                while j < b.len() && b[j] != b'\'' {
                    j += 1;
                }
                i = j + 1;
                out.push_str("' '");
            } else if let Some(len) = std::str::from_utf8(&b[i + 1..]).ok().and_then(|rest| rest.chars().next()).map(char::len_utf8) {
                if b.get(i + 1 + len) == Some(&b'\'') {
                    i += 2 + len;
                    out.push_str("' '");
                } else {
                    out.push('\'');
                    i += 1;
                }
            } else {
                out.push('\'');
                i += 1;
            }
        } else {
            // Copy one whole UTF-8 character.
            let len = std::str::from_utf8(&b[i..]).ok().and_then(|s| s.chars().next()).map_or(1, char::len_utf8);
            out.push_str(&String::from_utf8_lossy(&b[i..i + len]));
            i += len;
        }
    }
    out
}

/// Whether code names `path` (`tokio`, `std::net`) as a path of its own: `use tokio…`, `tokio::…`,
/// not `my_tokio::…`.
fn names_path(code: &str, path: &str) -> bool {
    code.match_indices(path).any(|(at, _)| {
        let before = code[..at].chars().last();
        let after = &code[at + path.len()..];
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') && (after.starts_with("::") || after.starts_with(';'))
    })
}

fn is_ident(c: Option<&u8>) -> bool {
    c.is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// The top-level modules a file's code names through `crate::` (`use crate::x::…`, `crate::x::f()`,
/// `use crate::{x, y::z}`, `$crate::x`).
fn crate_modules(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().last();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // some_crate::…, not crate::
        }
        let rest_trim = rest.trim_start();
        if let Some(group) = rest_trim.strip_prefix('{') {
            // use crate::{a, b::c, d::{e, f}}: the first segment of each top-level item.
            let mut depth = 0;
            let mut item = String::new();
            for ch in group.chars() {
                match ch {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        push_first_segment(&item, &mut found);
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        push_first_segment(&item, &mut found);
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 {
                    item.push(ch);
                }
            }
        } else {
            push_first_segment(rest_trim, &mut found);
        }
    }
    found
}

fn push_first_segment(s: &str, found: &mut BTreeSet<String>) {
    let name: String = s.trim_start().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    if !name.is_empty() && name != "self" {
        found.insert(name);
    }
}

/// The top-level module a file under `src/` belongs to (`src/chat/relay.rs` → `chat`); None for the
/// crate roots (`lib.rs`, `main.rs`).
fn top_module(rel: &Path) -> Option<String> {
    let mut parts = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned());
    let first = parts.next()?;
    let is_file = rel.components().count() == 1;
    if is_file {
        let name = first.strip_suffix(".rs")?;
        return (name != "lib" && name != "main").then(|| name.to_string());
    }
    Some(first)
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// Checks one file's code against the rules; `graph` collects the module edges.
fn check_file(rel: &str, module: &str, code: &str, graph: &mut BTreeMap<String, BTreeSet<String>>) -> Vec<Violation> {
    let mut out = Vec::new();
    let rule = RULES.iter().find(|r| r.module == module);
    let used = crate_modules(code);
    for u in &used {
        if u == module {
            continue;
        }
        graph.entry(module.to_string()).or_default().insert(u.clone());
        match rule {
            None => out.push(Violation {
                file: rel.to_string(),
                uses: u.clone(),
                rule: format!("`{module}` is not a known layer: add it to RULES in tests/layers.rs and to ARCHITECTURE.md's Layers"),
            }),
            Some(r) if !r.may_use.contains(&u.as_str()) => out.push(Violation {
                file: rel.to_string(),
                uses: u.clone(),
                rule: format!(
                    "{}: `{module}` may not use `crate::{u}` ({})",
                    if LEAVES.contains(&module) { "leaf" } else { "layer" },
                    r.why
                ),
            }),
            Some(_) => {}
        }
    }
    if module == "routing" {
        for forbidden in ROUTING_FORBIDS {
            if names_path(code, forbidden) {
                out.push(Violation {
                    file: rel.to_string(),
                    uses: forbidden.to_string(),
                    rule: "the routing engine is pure: no runtime, database, network or file access".into(),
                });
            }
        }
    }
    out
}

/// The store's views a file's code names: a call of a view's accessor (`.cases().`) or a path into
/// a view's module (`store::cases::CaseRules`, `use crate::store::{cases, figures::Tally}`).
fn store_views(code: &str) -> BTreeSet<String> {
    // The store's modules the code names by path.
    let mut named = BTreeSet::new();
    for (at, _) in code.match_indices("store::") {
        if is_ident(code.as_bytes().get(at.wrapping_sub(1))) {
            continue; // some_store::…
        }
        let rest = &code[at + "store::".len()..];
        if let Some(group) = rest.trim_start().strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                push_first_segment(item, &mut named);
            }
        } else {
            push_first_segment(rest, &mut named);
        }
    }
    let mut found = BTreeSet::new();
    for (view, modules) in STORE_VIEWS {
        let call = format!(".{view}()");
        let called = !VIEWS_WITHOUT_ACCESSOR.contains(view)
            && code.match_indices(&call).any(|(at, _)| {
                let after = code[at + call.len()..].trim_start();
                after.starts_with('.') && !after.starts_with("..")
            });
        if called || modules.iter().any(|m| named.contains(*m)) {
            found.insert(view.to_string());
        }
    }
    found
}

/// Checks the store's views one file names against [`VIEW_RULES`].
fn check_views(rel: &str, module: &str, code: &str) -> Vec<Violation> {
    if module == "app" || module == "store" {
        return Vec::new();
    }
    let allowed: &[&str] = VIEW_RULES.iter().find(|(m, _)| *m == module).map_or(&[], |(_, v)| v);
    store_views(code)
        .into_iter()
        .filter(|v| !allowed.contains(&v.as_str()))
        .map(|v| Violation {
            file: rel.to_string(),
            uses: format!("store.{v}()"),
            rule: format!(
                "view: `{module}` may name only the store's views {} (ARCHITECTURE.md, Layers: the store's views), not `{v}`",
                if allowed.is_empty() { "(none)".to_string() } else { allowed.join(", ") }
            ),
        })
        .collect()
}

/// Module cycles (strongly connected components with more than one module).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    // Tarjan's algorithm, iterative enough for a graph of a few dozen nodes.
    struct T<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<String, usize>,
        low: BTreeMap<String, usize>,
        stack: Vec<String>,
        on: BTreeSet<String>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit(t: &mut T<'_>, v: &str) {
        t.index.insert(v.to_string(), t.next);
        t.low.insert(v.to_string(), t.next);
        t.next += 1;
        t.stack.push(v.to_string());
        t.on.insert(v.to_string());
        let ws: Vec<String> = t.g.get(v).map(|s| s.iter().cloned().collect()).unwrap_or_default();
        for w in ws {
            if !t.index.contains_key(&w) {
                visit(t, &w);
                let lw = t.low[&w];
                let lv = t.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if t.on.contains(&w) {
                let iw = t.index[&w];
                let lv = t.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(&w);
                let done = w == v;
                comp.push(w);
                if done {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                t.out.push(comp);
            }
        }
    }
    let mut t =
        T { g: graph, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), on: BTreeSet::new(), next: 0, out: Vec::new() };
    let nodes: BTreeSet<String> = graph.keys().cloned().chain(graph.values().flatten().cloned()).collect();
    for n in nodes {
        if !t.index.contains_key(&n) {
            visit(&mut t, &n);
        }
    }
    t.out
}

/// Checks a file against the narrower rules of the part of its layer it is in ([`PART_RULES`],
/// [`PURE_PARTS`]).
fn check_part(rel: &str, code: &str) -> Vec<Violation> {
    let mut out = Vec::new();
    for (part, may_use, why) in PART_RULES {
        if !rel.starts_with(part) {
            continue;
        }
        for u in crate_modules(code) {
            if !may_use.contains(&u.as_str()) {
                out.push(Violation { file: format!("src/{rel}"), uses: u, rule: format!("`{part}` may use only {may_use:?} ({why})") });
            }
        }
    }
    if PURE_PARTS.iter().any(|p| rel.starts_with(p)) {
        for forbidden in ROUTING_FORBIDS {
            if names_path(code, forbidden) {
                out.push(Violation {
                    file: format!("src/{rel}"),
                    uses: forbidden.to_string(),
                    rule: "a pure state machine: no runtime, database, network or file access".into(),
                });
            }
        }
    }
    out
}

#[test]
fn the_asterisk_adapter_may_not_reach_into_the_server() {
    let code = code_only("use crate::chat::engine_task::EngineCommand;\nuse crate::protocol::TelephonyEvent;\n");
    let v = check_part("edge/asterisk/mod.rs", &code);
    assert_eq!(v.iter().map(|v| v.uses.as_str()).collect::<Vec<_>>(), ["chat"], "{v:?}");
    let v = check_part("edge/asterisk/machine.rs", &code_only("async fn f() { tokio::time::sleep(d).await; }"));
    assert_eq!(v.iter().map(|v| v.uses.as_str()).collect::<Vec<_>>(), ["tokio"], "{v:?}");
    assert!(check_part("edge/rest.rs", &code).is_empty());
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn every_file_keeps_to_its_layer_and_no_modules_form_a_cycle() {
    let src = src_dir();
    let mut files = Vec::new();
    rs_files(&src, &mut files);
    assert!(files.len() > 50, "expected the sources under {}, found {} files", src.display(), files.len());
    let mut graph = BTreeMap::new();
    let mut violations = Vec::new();
    for path in &files {
        let rel = path.strip_prefix(&src).expect("under src");
        let Some(module) = top_module(rel) else { continue };
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let code = code_only(&text);
        violations.extend(check_file(&format!("src/{}", rel.display()), &module, &code, &mut graph));
        violations.extend(check_views(&format!("src/{}", rel.display()), &module, &code));
        violations.extend(check_part(&rel.to_string_lossy(), &code));
    }
    let report: Vec<String> = violations
        .iter()
        .map(|v| {
            if v.uses.starts_with("store.") {
                format!("{}: uses `{}`: {}", v.file, v.uses, v.rule)
            } else {
                format!("{}: uses `crate::{}`: {}", v.file, v.uses, v.rule)
            }
        })
        .collect();
    assert!(report.is_empty(), "{} imports break the layers (ARCHITECTURE.md, Layers):\n{}", report.len(), report.join("\n"));
    let cycles = cycles(&graph);
    assert!(cycles.is_empty(), "import cycles between top-level modules: {cycles:?}");
    // Every layer the rules name exists, and every module found is a layer.
    for r in RULES {
        assert!(graph.contains_key(r.module) || LEAVES.contains(&r.module), "RULES names `{}`, which src/ has no more", r.module);
    }
}

#[test]
fn src_has_at_most_sixteen_entries_at_its_top() {
    let entries: Vec<String> =
        std::fs::read_dir(src_dir()).expect("src/").filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    assert!(entries.len() <= MAX_TOP_ENTRIES, "src/ has {} entries at its top (at most {MAX_TOP_ENTRIES}): {entries:?}", entries.len());
    for e in &entries {
        let name = e.strip_suffix(".rs").unwrap_or(e);
        assert!(
            name == "lib" || name == "main" || RULES.iter().any(|r| r.module == name),
            "src/{e} is not a layer named in tests/layers.rs RULES and ARCHITECTURE.md"
        );
    }
}

/// Every view the rules name is one of the store's: its accessor is on `Store` (src/store/mod.rs,
/// `pub fn cases(&self) -> cases::Cases<'_>`) and its module is one of the view's; and every
/// accessor there is in [`STORE_VIEWS`].
#[test]
fn the_views_the_rules_name_are_the_stores() {
    let mod_rs = std::fs::read_to_string(src_dir().join("store/mod.rs")).expect("src/store/mod.rs");
    let mut accessors = BTreeMap::new();
    for line in mod_rs.lines() {
        let Some(rest) = line.trim_start().strip_prefix("pub fn ") else { continue };
        let Some((name, ret)) = rest.split_once("(&self) -> ") else { continue };
        let Some((module, _)) = ret.split_once("::") else { continue };
        if ret.contains("<'_>") {
            accessors.insert(name.to_string(), module.to_string());
        }
    }
    for (view, module) in &accessors {
        let known = STORE_VIEWS.iter().find(|(v, _)| v == view);
        assert!(
            known.is_some_and(|(_, ms)| ms.contains(&module.as_str())),
            "Store::{view}() (in store::{module}) is not in STORE_VIEWS of tests/layers.rs"
        );
    }
    for (view, _) in STORE_VIEWS {
        assert!(
            accessors.contains_key(*view) || VIEWS_WITHOUT_ACCESSOR.contains(view),
            "STORE_VIEWS names `{view}`, which Store has no accessor for"
        );
    }
    for (module, views) in VIEW_RULES {
        assert!(RULES.iter().any(|r| r.module == *module), "VIEW_RULES names `{module}`, not a layer");
        for v in *views {
            assert!(STORE_VIEWS.iter().any(|(s, _)| s == v), "VIEW_RULES gives `{module}` the view `{v}`, which the store has not");
        }
    }
}

#[test]
fn a_view_a_layer_may_not_name_is_named_with_its_file() {
    let code = code_only(concat!(
        "use crate::store::cases::CaseRules;\n",
        "use crate::store::{Store, users::Role};\n",
        "async fn f(s: &Store) { s.calls().call_record(\"x\").await; s.cases().case(\"y\").await; }\n",
        "// state.store.abuse().block(..)\n",
        "fn g(t: &Tally) { t.figures(); crate::store::figures::fetch_staff(s); }\n",
    ));
    let found: Vec<String> = store_views(&code).into_iter().collect();
    assert_eq!(found, ["accounts", "calls", "cases", "figures"]);
    let v = check_views("src/casework/x.rs", "casework", &code);
    let named: Vec<(&str, &str)> = v.iter().map(|v| (v.file.as_str(), v.uses.as_str())).collect();
    assert_eq!(named, [("src/casework/x.rs", "store.calls()"), ("src/casework/x.rs", "store.figures()")], "{v:?}");
    assert!(v[0].rule.contains("`casework` may name only the store's views"), "{}", v[0].rule);
    assert!(check_views("src/app/x.rs", "app", &code).is_empty(), "the wiring names any view");
}

// The checker itself: it must see what a reader sees, and nothing in comments or strings.

#[test]
fn a_forbidden_import_is_named_with_its_file_and_rule() {
    let mut graph = BTreeMap::new();
    let code = code_only("use crate::cluster::link::Link;\nuse crate::store::Store;\n");
    let v = check_file("src/chat/relay.rs", "chat", &code, &mut graph);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].file, "src/chat/relay.rs");
    assert_eq!(v[0].uses, "cluster");
    assert!(v[0].rule.contains("does not know the cluster transport"), "{}", v[0].rule);
    // A grouped import and a path in an expression are found too.
    let code = code_only("use crate::{store::Store, edge::rest};\nfn f() { crate::app::loops::start(); }\n");
    let v = check_file("src/store/x.rs", "store", &code, &mut BTreeMap::new());
    let uses: Vec<&str> = v.iter().map(|v| v.uses.as_str()).collect();
    assert_eq!(uses, ["app", "edge"], "{v:?}");
    // The leaves use nothing.
    assert_eq!(check_file("src/protocol/mod.rs", "protocol", &code_only("use crate::routing::Input;"), &mut graph).len(), 1);
    // The routing engine uses no runtime.
    let v = check_file("src/routing/mod.rs", "routing", &code_only("use tokio::time::Instant;\n"), &mut graph);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].uses, "tokio");
}

#[test]
fn comments_strings_and_other_crates_are_not_imports() {
    let code = code_only(concat!(
        "// use crate::app::x;\n",
        "/// see [`crate::edge::rest`]\n",
        "/* crate::cluster::link /* nested crate::app */ */\n",
        "const S: &str = \"crate::app::cli\";\n",
        "const R: &str = r#\"crate::edge \" still\"#;\n",
        "const C: char = '\"'; const D: char = '\\'';\n",
        "fn f<'a>(x: &'a str) -> &'a str { x }\n",
        "use some_crate::thing; use mycrate::app;\n",
        "use crate::store::Store;\n",
    ));
    let found = crate_modules(&code);
    assert_eq!(found.into_iter().collect::<Vec<_>>(), ["store"]);
}

#[test]
fn a_cycle_between_modules_is_found() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.entry("chat".into()).or_default().insert("store".into());
    g.entry("store".into()).or_default().insert("routing".into());
    assert!(cycles(&g).is_empty());
    g.entry("store".into()).or_default().insert("chat".into());
    assert_eq!(cycles(&g), vec![vec!["chat".to_string(), "store".to_string()]]);
}
