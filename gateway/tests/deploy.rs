//! The operator files under `deploy/` stay valid and in step with the code:
//!
//! - every YAML file parses (Kubernetes files as several documents) and
//!   every JSON file parses;
//! - every metric name, and every `reason`/`result`/`direction`/`kind`
//!   label value, that the alert rules, their unit tests and the Grafana
//!   dashboard use is one `docs/METRICS.md` documents, on a metric that has
//!   that label;
//! - `promtool` accepts the rules, runs their unit tests and accepts the
//!   Prometheus configuration; `systemd-analyze` verifies the unit and rates
//!   its sandbox, `systemd-sysusers` accepts the user entry;
//! - every gateway configuration (the files and the Kubernetes ConfigMaps)
//!   passes `iax2-gateway check-config`, and each place that stops the
//!   gateway waits longer than its drain deadline;
//! - every path that a kustomization, the compose file, the Containerfile
//!   or the Debian package metadata names exists.
//!
//! promtool (Debian's `prometheus`), systemd-analyze and systemd-sysusers
//! (Debian's `systemd`) are required: a missing one fails the test and
//! names `scripts/install-test-deps`, which installs them.

// Test helpers outside #[test] functions fail loudly by design.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

/// The repository root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn deploy() -> PathBuf {
    repo().join("deploy")
}

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("deploy-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Files under `dir` (recursively) whose name ends with one of `suffixes`,
/// sorted.
fn files_under(dir: &Path, suffixes: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if suffixes.iter().any(|s| path.to_string_lossy().ends_with(s)) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every document of a YAML file.
fn yaml_docs(path: &Path) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(&read(path))
        .unwrap_or_else(|e| panic!("{}: not valid YAML: {e}", path.display()))
}

/// The one document of a YAML file.
fn yaml(path: &Path) -> Value {
    let mut docs = yaml_docs(path);
    assert_eq!(docs.len(), 1, "{}: one document expected", path.display());
    docs.remove(0)
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&read(path))
        .unwrap_or_else(|e| panic!("{}: not valid JSON: {e}", path.display()))
}

/// `name` from `PATH`, or a failure that says how to install it.
fn require_tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not installed: run scripts/install-test-deps \
                 (promtool comes with Debian's prometheus package, systemd-analyze \
                 and systemd-sysusers with systemd)"
            )
        })
}

/// Runs `cmd`, fails the test with its output unless it succeeds, and
/// returns stdout and stderr together.
fn run_ok(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{text}",
        out.status
    );
    text
}

fn rel(path: &Path) -> String {
    path.strip_prefix(repo())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[test]
fn every_yaml_and_json_file_parses() {
    let yaml_files = files_under(&deploy(), &[".yaml", ".yml"]);
    assert!(yaml_files.len() >= 20, "found only {yaml_files:?}");
    for path in &yaml_files {
        let docs = yaml_docs(path);
        assert!(!docs.is_empty(), "{}: no document", rel(path));
        for doc in &docs {
            assert!(
                doc.is_object(),
                "{}: a document is not a mapping",
                rel(path)
            );
        }
    }
    let json_files = files_under(&deploy(), &[".json"]);
    assert!(!json_files.is_empty());
    for path in &json_files {
        assert!(json(path).is_object(), "{}: not a JSON object", rel(path));
    }
}

/// A row of the metric table in `docs/METRICS.md`.
struct MetricDoc {
    kind: String,
    /// The Labels cell.
    labels: String,
    /// Every backticked word of the row (label names and their values).
    words: BTreeSet<String>,
}

fn backticked(text: &str) -> BTreeSet<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

fn documented_metrics() -> BTreeMap<String, MetricDoc> {
    let text = read(&repo().join("docs/METRICS.md"));
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // "", name, type, labels, meaning, ""
        assert!(cells.len() >= 5, "METRICS.md: odd row {line}");
        let name = cells[1].trim_matches('`').to_owned();
        out.insert(
            name,
            MetricDoc {
                kind: cells[2].to_owned(),
                labels: cells[3].to_owned(),
                words: backticked(line),
            },
        );
    }
    assert!(out.len() >= 20, "METRICS.md: table not found");
    out
}

/// The documented metric a name in a query stands for: itself, or the
/// histogram it is a `_bucket`/`_sum`/`_count` series of.
fn resolve<'a>(name: &'a str, docs: &BTreeMap<String, MetricDoc>) -> Option<&'a str> {
    if docs.contains_key(name) {
        return Some(name);
    }
    ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
        let base = name.strip_suffix(suffix)?;
        docs.get(base)
            .filter(|d| d.kind.starts_with("histogram"))
            .map(|_| base)
    })
}

/// A character of a metric or label name. (`:` belongs to recording-rule
/// names, which the contract has none of; leaving it out lets prose such
/// as "`iax2_gateway_calls_active`: ..." name the metric.)
fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Metric-like words in `text` (`iax2_gateway_*`, `process_*`), each with
/// its label selector when one follows.
fn metric_uses(text: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(|c: char| is_ident(c)) {
        let word_rest = &rest[start..];
        let end = word_rest
            .find(|c: char| !is_ident(c))
            .unwrap_or(word_rest.len());
        let word = &word_rest[..end];
        let after = &word_rest[end..];
        if word.starts_with("iax2_gateway_") || word.starts_with("process_") {
            let selector = after
                .strip_prefix('{')
                .and_then(|s| s.find('}').map(|close| s[..close].to_owned()));
            out.push((word.to_owned(), selector));
        }
        rest = after;
    }
    out
}

/// `label op "value"` matchers of a selector body.
fn matchers(selector: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut rest = selector;
    loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
        if rest.is_empty() {
            return out;
        }
        let name_end = rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len());
        let label = rest[..name_end].to_owned();
        let after = rest[name_end..].trim_start();
        let op_end = after
            .find('"')
            .unwrap_or_else(|| panic!("selector {selector:?}"));
        let op = after[..op_end].trim().to_owned();
        let value_rest = &after[op_end + 1..];
        let close = value_rest
            .find('"')
            .unwrap_or_else(|| panic!("selector {selector:?}"));
        out.push((label, op, value_rest[..close].to_owned()));
        rest = &value_rest[close + 1..];
    }
}

/// Strings under `key` anywhere in a JSON tree.
fn strings_under_key(value: &Value, key: &str, out: &mut Vec<String>) {
    if let Some(map) = value.as_object() {
        for (k, v) in map {
            if k == key {
                if let Some(s) = v.as_str() {
                    out.push(s.to_owned());
                }
            }
            strings_under_key(v, key, out);
        }
    } else if let Some(items) = value.as_array() {
        for v in items {
            strings_under_key(v, key, out);
        }
    }
}

/// Checks every metric use in `text`, and with `selectors` the label
/// matchers that follow them (not in raw JSON, whose quotes are escaped);
/// returns how many it checked.
fn check_metric_uses(
    text: &str,
    origin: &str,
    selectors: bool,
    docs: &BTreeMap<String, MetricDoc>,
) -> usize {
    // A label's values are listed in the metric's own row (`drops_total`:
    // its reasons), or in the row that introduces the label: `bytes_total`
    // only names `direction`, `packets_total` describes it, "`direction`
    // (`rx`, `tx`)". So the allowed values are the words of the metric's
    // row, and unless that row describes the label itself, of every row
    // that describes it. (`peer_info` describes its `kind`, `pbx` and
    // `gateway`; `packets_total` its own: neither takes the other's.)
    let values_of = |metric: &MetricDoc, label: &str| -> BTreeSet<String> {
        let described = format!("`{label}` (");
        if metric.labels.contains(&described) {
            return metric.words.clone();
        }
        docs.values()
            .filter(|d| d.labels.contains(&described))
            .flat_map(|d| d.words.iter().cloned())
            .chain(metric.words.iter().cloned())
            .collect()
    };
    let uses = metric_uses(text);
    for (word, selector) in &uses {
        let name = resolve(word, docs).unwrap_or_else(|| {
            panic!("{origin}: `{word}` is not in docs/METRICS.md (nor a _bucket/_sum/_count of a histogram there)")
        });
        let doc = &docs[name];
        let Some(selector) = selector.as_ref().filter(|_| selectors) else {
            continue;
        };
        for (label, op, value) in matchers(selector) {
            // Target labels, the histogram bucket bound, and Grafana
            // variables are not the contract's.
            if ["job", "instance", "site", "le"].contains(&label.as_str()) || value.contains('$') {
                continue;
            }
            assert!(
                doc.labels.contains(&format!("`{label}`")),
                "{origin}: `{word}` has no label `{label}` in docs/METRICS.md (labels: {})",
                doc.labels
            );
            if !["reason", "result", "direction", "kind"].contains(&label.as_str()) {
                continue;
            }
            let allowed = values_of(doc, &label);
            let values: Vec<&str> = if op.contains('~') {
                value.split('|').collect()
            } else {
                vec![value.as_str()]
            };
            for v in values {
                assert!(
                    allowed.contains(v),
                    "{origin}: `{word}{{{label}{op}...}}`: `{v}` is not a documented value of `{label}`"
                );
            }
        }
    }
    uses.len()
}

#[test]
fn metric_names_and_label_values_are_the_documented_ones() {
    let docs = documented_metrics();
    let prom = deploy().join("prometheus");
    let mut checked = 0;
    // The rule files in full: expressions, and the metric names that the
    // descriptions mention, which must exist too.
    for file in ["alerts.yml", "alerts.test.yml"] {
        checked += check_metric_uses(&read(&prom.join(file)), file, true, &docs);
    }
    let dashboard_path = deploy().join("grafana/iax2-gateway.json");
    let dashboard = json(&dashboard_path);
    let mut queries = Vec::new();
    strings_under_key(&dashboard, "expr", &mut queries);
    strings_under_key(&dashboard, "definition", &mut queries);
    for q in &queries {
        checked += check_metric_uses(q, "iax2-gateway.json", true, &docs);
    }
    // The whole text too, so a name in a description cannot drift either.
    checked += check_metric_uses(&read(&dashboard_path), "iax2-gateway.json", false, &docs);
    assert!(checked > 50, "only {checked} metric uses found");

    // Each alert the operations issue asks for exists.
    let rules = yaml(&prom.join("alerts.yml"));
    let mut alerts = Vec::new();
    strings_under_key(&rules, "alert", &mut alerts);
    for wanted in [
        "IAX2GatewayDown",
        "IAX2PeerDown",
        "IAX2GatewayDrops",
        "IAX2VoiceLoss",
        "IAX2CallNumbersNearCapacity",
        "IAX2CallsRefused",
        "IAX2ConfigReloadFailed",
    ] {
        assert!(
            alerts.iter().any(|a| a == wanted),
            "alerts.yml lacks {wanted}"
        );
    }
}

#[test]
fn dashboard_panels_query_through_the_datasource_variable() {
    let dashboard = json(&deploy().join("grafana/iax2-gateway.json"));
    let vars: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    for wanted in ["datasource", "job", "instance", "peer"] {
        assert!(
            vars.contains(&wanted),
            "dashboard variable {wanted} missing: {vars:?}"
        );
    }
    let mut ids = BTreeSet::new();
    let panels = dashboard["panels"].as_array().unwrap();
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or("?");
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "duplicate panel id at {title}"
        );
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "panel {title}");
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel {title} has no query");
        for t in targets {
            assert!(
                t["expr"].as_str().is_some_and(|e| !e.is_empty()),
                "panel {title}"
            );
        }
        let pos = &panel["gridPos"];
        assert!(
            pos["x"].as_u64().unwrap() + pos["w"].as_u64().unwrap() <= 24,
            "panel {title} is wider than the grid"
        );
    }
    assert!(panels.len() >= 20);
}

#[test]
fn promtool_accepts_the_rules_their_tests_and_the_config() {
    let promtool = require_tool("promtool");
    let dir = deploy().join("prometheus");
    // From the files' directory: prometheus.yml and alerts.test.yml name
    // alerts.yml relative to themselves.
    let out = run_ok(
        Command::new(&promtool)
            .current_dir(&dir)
            .args(["check", "rules", "alerts.yml"]),
        "promtool check rules alerts.yml",
    );
    assert!(out.contains("SUCCESS"), "{out}");
    run_ok(
        Command::new(&promtool)
            .current_dir(&dir)
            .args(["test", "rules", "alerts.test.yml"]),
        "promtool test rules alerts.test.yml",
    );
    run_ok(
        Command::new(&promtool)
            .current_dir(&dir)
            .args(["check", "config", "prometheus.yml"]),
        "promtool check config prometheus.yml",
    );
}

/// The unit with `/usr/bin/iax2-gateway` replaced by the binary just built,
/// which systemd-analyze requires to exist.
fn unit_for_analysis(dir: &Path) -> PathBuf {
    let unit = read(&deploy().join("systemd/iax2-gateway.service"));
    let bin = env!("CARGO_BIN_EXE_iax2-gateway");
    assert!(
        !bin.contains(char::is_whitespace),
        "binary path {bin:?} needs quoting"
    );
    assert_eq!(
        unit.matches("/usr/bin/iax2-gateway ").count(),
        2,
        "ExecStartPre and ExecStart"
    );
    let path = dir.join("iax2-gateway.service");
    std::fs::write(
        &path,
        unit.replace("/usr/bin/iax2-gateway ", &format!("{bin} ")),
    )
    .unwrap();
    path
}

#[test]
fn systemd_verifies_the_unit_and_its_sandbox() {
    let analyze = require_tool("systemd-analyze");
    let dir = scratch("systemd");
    let unit = unit_for_analysis(&dir);
    // verify reports problems (unknown keys, bad values, a missing binary)
    // as warnings with a zero exit, so any output at all fails. It does not
    // check that User= exists (the package creates it); sysusers is checked
    // below.
    let out = run_ok(
        Command::new(&analyze)
            .args(["verify", "--man=no"])
            .arg(&unit),
        "systemd-analyze verify",
    );
    assert!(out.trim().is_empty(), "systemd-analyze verify:\n{out}");
    // The sandbox's exposure score (0 best, 10 worst) stays "OK": at most
    // 2.0. It is 1.4 as written.
    run_ok(
        Command::new(&analyze)
            .args(["security", "--offline=true", "--threshold=20", "--no-pager"])
            .arg(&unit),
        "systemd-analyze security --threshold=20 (exposure above 2.0)",
    );

    let sysusers = require_tool("systemd-sysusers");
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    run_ok(
        Command::new(&sysusers)
            .arg("--dry-run")
            .arg(format!("--root={}", root.display()))
            .arg(deploy().join("systemd/iax2-gateway.sysusers")),
        "systemd-sysusers --dry-run iax2-gateway.sysusers",
    );
    let entry = read(&deploy().join("systemd/iax2-gateway.sysusers"));
    assert!(
        entry.lines().any(|l| l.starts_with("u iax2-gateway ")),
        "the unit's User=iax2-gateway must be the sysusers entry"
    );
}

/// A gateway configuration found under deploy/: a file, or a ConfigMap's
/// `gateway.yaml` written out to a file.
struct GatewayConfig {
    origin: String,
    path: PathBuf,
}

fn gateway_configs(dir: &Path) -> Vec<GatewayConfig> {
    let mut out = Vec::new();
    for path in files_under(&deploy(), &[".yaml", ".yml"]) {
        for (i, doc) in yaml_docs(&path).iter().enumerate() {
            if doc.get("peers").is_some() && doc.get("routes").is_some() {
                out.push(GatewayConfig {
                    origin: rel(&path),
                    path: path.clone(),
                });
            }
            if doc["kind"] == "ConfigMap" {
                let Some(data) = doc["data"].as_object() else {
                    continue;
                };
                for (key, text) in data {
                    let text = text.as_str().unwrap();
                    if key.ends_with(".yaml") && text.contains("peers:") {
                        let name = format!("{}-{i}-{key}", rel(&path).replace('/', "_"));
                        let file = dir.join(name);
                        std::fs::write(&file, text).unwrap();
                        out.push(GatewayConfig {
                            origin: format!("{} (ConfigMap data {key})", rel(&path)),
                            path: file,
                        });
                    }
                }
            }
        }
    }
    out
}

#[test]
fn gateway_configurations_pass_check_config() {
    let dir = scratch("configs");
    let configs = gateway_configs(&dir);
    let origins: Vec<&str> = configs.iter().map(|c| c.origin.as_str()).collect();
    // The two Asterisk sites, the compose lab pair, the Debian example and
    // the two Kubernetes sites.
    assert!(configs.len() >= 7, "found only {origins:?}");
    for c in &configs {
        let out = Command::new(env!("CARGO_BIN_EXE_iax2-gateway"))
            .arg("check-config")
            .arg(&c.path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: iax2-gateway check-config failed:\n{}{}",
            c.origin,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The longest drain deadline any deploy/ configuration asks for.
fn longest_drain() -> Duration {
    let dir = scratch("drain");
    gateway_configs(&dir)
        .iter()
        .map(|c| {
            iax2_config::load(&c.path)
                .unwrap_or_else(|e| panic!("{}: {e}", c.origin))
                .timeouts
                .drain
        })
        .max()
        .unwrap()
}

fn seconds(text: &str) -> u64 {
    text.trim()
        .trim_end_matches('s')
        .parse()
        .unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

#[test]
fn every_stop_waits_longer_than_the_drain() {
    let drain = longest_drain().as_secs();
    let unit = read(&deploy().join("systemd/iax2-gateway.service"));
    let timeout = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .map(seconds)
        .expect("the unit sets TimeoutStopSec");
    assert!(
        timeout > drain,
        "unit: TimeoutStopSec={timeout} <= drain {drain}"
    );

    let deployment = yaml(&deploy().join("kubernetes/base/deployment.yaml"));
    let grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap();
    assert!(grace > drain, "deployment: grace {grace} <= drain {drain}");

    let compose = yaml(&deploy().join("compose/compose.yaml"));
    for gw in ["gateway-a", "gateway-b"] {
        let grace = seconds(
            compose["services"][gw]["stop_grace_period"]
                .as_str()
                .unwrap(),
        );
        assert!(
            grace > drain,
            "compose {gw}: stop_grace_period {grace} <= drain {drain}"
        );
    }
}

/// `entry` of a kustomization exists relative to `dir` (a file, or a
/// directory holding a kustomization).
fn assert_kustomize_entry(dir: &Path, entry: &str, origin: &str) {
    let path = dir.join(entry);
    assert!(
        path.is_file() || path.join("kustomization.yaml").is_file(),
        "{origin}: {entry} does not exist"
    );
}

#[test]
fn kubernetes_manifests_are_complete() {
    let k8s = deploy().join("kubernetes");
    let mut kinds = BTreeSet::new();
    for path in files_under(&k8s, &[".yaml"]) {
        let origin = rel(&path);
        for doc in yaml_docs(&path) {
            let kind = doc["kind"]
                .as_str()
                .unwrap_or_else(|| panic!("{origin}: no kind"));
            assert!(doc["apiVersion"].is_string(), "{origin}: no apiVersion");
            if path.file_name().unwrap() == "kustomization.yaml" {
                let dir = path.parent().unwrap();
                for key in ["resources", "components"] {
                    for entry in doc[key].as_array().into_iter().flatten() {
                        assert_kustomize_entry(dir, entry.as_str().unwrap(), &origin);
                    }
                }
                for patch in doc["patches"].as_array().into_iter().flatten() {
                    if let Some(p) = patch["path"].as_str() {
                        assert_kustomize_entry(dir, p, &origin);
                    }
                }
            } else {
                assert!(
                    doc["metadata"]["name"].is_string(),
                    "{origin}: no metadata.name"
                );
            }
            kinds.insert(kind.to_owned());
        }
    }
    for wanted in [
        "ConfigMap",
        "Deployment",
        "Service",
        "ServiceMonitor",
        "Namespace",
        "Kustomization",
        "Component",
    ] {
        assert!(
            kinds.contains(wanted),
            "no {wanted} under deploy/kubernetes"
        );
    }

    // The probes and the scrape annotations use the admin port the
    // ConfigMaps listen on. Readiness is /healthz (503 while draining);
    // liveness must stay OK while draining, so it is not /healthz: a TCP
    // connect to the admin port.
    let deployment = yaml(&k8s.join("base/deployment.yaml"));
    let pod = &deployment["spec"]["template"];
    let container = &pod["spec"]["containers"][0];
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], "admin");
    assert!(
        container["livenessProbe"].get("httpGet").is_none(),
        "liveness must not be /healthz: it answers 503 while draining, and a restart cuts the calls"
    );
    assert_eq!(container["livenessProbe"]["tcpSocket"]["port"], "admin");
    let admin_port = container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "admin")
        .unwrap()["containerPort"]
        .as_u64()
        .unwrap();
    assert_eq!(
        pod["metadata"]["annotations"]["prometheus.io/port"],
        admin_port.to_string()
    );
    for site in ["site-a", "site-b"] {
        let cm = yaml(&k8s.join(site).join("configmap.yaml"));
        let text = cm["data"]["gateway.yaml"].as_str().unwrap();
        let config: Value = serde_saphyr::from_str(text).unwrap();
        let listen = config["admin"]["listen"].as_str().unwrap();
        assert!(
            listen.ends_with(&format!(":{admin_port}")),
            "{site}: admin.listen {listen}"
        );
    }
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"][0], "ALL");
    assert_eq!(pod["spec"]["securityContext"]["runAsNonRoot"], true);
}

#[test]
fn compose_lab_files_and_prometheus_targets_line_up() {
    let compose_dir = deploy().join("compose");
    let compose = yaml(&compose_dir.join("compose.yaml"));
    let services = compose["services"].as_object().unwrap();
    for (name, service) in services {
        for volume in service["volumes"].as_array().into_iter().flatten() {
            let spec = volume.as_str().unwrap();
            let source = spec.split(':').next().unwrap();
            if source.starts_with('.') {
                assert!(
                    compose_dir.join(source).exists(),
                    "compose {name}: {source} does not exist"
                );
            }
        }
        if let Some(build) = service.get("build") {
            let context = compose_dir.join(build["context"].as_str().unwrap());
            let file = context.join(build["dockerfile"].as_str().unwrap());
            assert!(
                file.is_file(),
                "compose {name}: {} does not exist",
                file.display()
            );
        }
    }
    // Each scrape target is a compose service whose configuration puts its
    // admin listener on that port, reachable from Prometheus.
    let prometheus = yaml(&deploy().join("prometheus/prometheus.yml"));
    let mut targets = Vec::new();
    for list in prometheus["scrape_configs"].as_array().unwrap() {
        for sc in list["static_configs"].as_array().unwrap() {
            for t in sc["targets"].as_array().unwrap() {
                targets.push(t.as_str().unwrap().to_owned());
            }
        }
    }
    assert_eq!(targets.len(), 2, "{targets:?}");
    for target in &targets {
        let (host, port) = target.split_once(':').unwrap();
        let service = &services
            .get(host)
            .unwrap_or_else(|| panic!("target {target}: no compose service {host}"));
        let volume = service["volumes"][0].as_str().unwrap();
        let config = yaml(&compose_dir.join(volume.split(':').next().unwrap()));
        let listen = config["admin"]["listen"].as_str().unwrap();
        assert_eq!(listen, format!("0.0.0.0:{port}"), "{host}: admin.listen");
    }
}

#[test]
fn containerfile_copies_what_exists() {
    let text = read(&deploy().join("container/Containerfile"));
    let mut copies = 0;
    for line in text
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let words: Vec<&str> = line.split_whitespace().collect();
        // COPY src... dest
        for src in &words[1..words.len() - 1] {
            assert!(
                repo().join(src).exists(),
                "Containerfile: {line}: {src} missing"
            );
            copies += 1;
        }
    }
    // Every workspace member is copied: cargo reads all their manifests.
    let workspace = read(&repo().join("Cargo.toml"));
    let members = workspace
        .lines()
        .find_map(|l| l.strip_prefix("members = "))
        .unwrap();
    for member in backticked(&members.replace('"', "`")) {
        assert!(
            text.contains(&format!("COPY {member} {member}")),
            "Containerfile does not copy workspace member {member}"
        );
    }
    assert!(copies >= 6);
}

#[test]
fn debian_package_metadata_names_existing_files() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = run_ok(
        Command::new(cargo).current_dir(repo()).args([
            "metadata",
            "--format-version=1",
            "--no-deps",
            "--offline",
        ]),
        "cargo metadata",
    );
    let json_start = out.find('{').unwrap();
    let metadata: Value = serde_json::Deserializer::from_str(&out[json_start..])
        .into_iter::<Value>()
        .next()
        .unwrap()
        .unwrap();
    let package = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "iax2-gateway")
        .unwrap();
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let deb = &package["metadata"]["deb"];
    assert_eq!(deb["section"], "net");
    assert_eq!(deb["priority"], "optional");

    let mut dests = BTreeSet::new();
    for asset in deb["assets"].as_array().unwrap() {
        let [src, dest, mode] = [0, 1, 2].map(|i| asset[i].as_str().unwrap());
        u32::from_str_radix(mode, 8).unwrap_or_else(|e| panic!("asset {src}: mode {mode}: {e}"));
        if let Some(bin) = src.strip_prefix("target/release/") {
            assert_eq!(
                bin, "iax2-gateway",
                "cargo-deb builds target/release/ assets"
            );
        } else if let Some(dir) = src.strip_suffix("/*") {
            let dir = crate_dir.join(dir);
            assert!(
                std::fs::read_dir(&dir).unwrap().next().is_some(),
                "asset {src}: empty"
            );
        } else {
            assert!(crate_dir.join(src).is_file(), "asset {src} does not exist");
        }
        dests.insert(format!("/{dest}"));
    }
    for conffile in deb["conf-files"].as_array().unwrap() {
        let conffile = conffile.as_str().unwrap();
        assert!(
            dests.contains(conffile),
            "conf-file {conffile} is not an asset"
        );
    }
    assert!(dests.contains("/etc/iax2-gateway/gateway.yaml"));

    // The maintainer scripts: postinst creates the unit's user and leaves
    // cargo-deb the #DEBHELPER# token for the systemd handling.
    let scripts = crate_dir.join(deb["maintainer-scripts"].as_str().unwrap());
    let postinst = scripts.join("postinst");
    let text = read(&postinst);
    assert!(text.contains("#DEBHELPER#"), "postinst lacks #DEBHELPER#");
    assert!(
        text.contains("adduser --system --group"),
        "postinst does not create the user"
    );
    run_ok(
        Command::new("sh").arg("-n").arg(&postinst),
        "sh -n postinst",
    );

    // systemd-units finds `<unit-name>.service` in `unit-scripts`.
    let units = &deb["systemd-units"];
    let unit_dir = crate_dir.join(units["unit-scripts"].as_str().unwrap());
    let unit_name = units["unit-name"].as_str().unwrap();
    assert!(unit_dir.join(format!("{unit_name}.service")).is_file());
    assert_eq!(units["enable"], false);
    assert_eq!(units["start"], false);
    // The example conffile is what ExecStartPre checks; it must load.
    assert!(read(&unit_dir.join(format!("{unit_name}.service")))
        .contains("check-config /etc/iax2-gateway/gateway.yaml"));
    iax2_config::load(&crate_dir.join("../deploy/debian/gateway.yaml")).unwrap();
}
