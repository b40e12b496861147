//! The `admission:` map: defaults, every key, and errors at the value with
//! its range.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use iax2_config::{from_yaml_str, Admission, ConfigError, ErrorKind};

const BASE: &str = "\
peers:
  pbx:
    host: 10.0.0.1
    kind: pbx
  gw:
    host: 10.0.0.2:4570
    kind: gateway
    trunk: true
routes:
  - from: pbx
    to: gw
";

fn err(text: &str) -> ConfigError {
    match from_yaml_str(text, "site.yaml") {
        Ok(c) => panic!("accepted:\n{text}\nas {c:?}"),
        Err(e) => e,
    }
}

#[test]
fn defaults_without_the_map_and_for_missing_keys() {
    let c = from_yaml_str(BASE, "site.yaml").unwrap();
    let d = c.timeouts.admission;
    assert_eq!(d, Admission::default());
    assert_eq!(
        (d.maxcallnumbers, d.new_rate, d.new_burst, d.max_unanswered),
        (4096, 1000, 2000, 4096)
    );
    assert_eq!(
        (
            d.max_unanswered_per_source,
            d.max_calls,
            d.control_rate,
            d.control_burst
        ),
        (1024, 32765, 50, 100)
    );
    assert_eq!(d.answer_timeout, Duration::from_secs(600));
    let c = from_yaml_str(&format!("admission: {{}}\n{BASE}"), "site.yaml").unwrap();
    assert_eq!(c.timeouts.admission, Admission::default());
}

#[test]
fn every_key_is_read() {
    let text = format!(
        "admission:\n  maxcallnumbers: 10\n  new_rate: 20\n  new_burst: 30\n  \
         max_unanswered: 40\n  max_unanswered_per_source: 45\n  max_calls: 50\n  control_rate: 60\n  control_burst: 70\n  \
         answer_timeout: 80\n{BASE}"
    );
    let a = from_yaml_str(&text, "site.yaml")
        .unwrap()
        .timeouts
        .admission;
    assert_eq!(
        a,
        Admission {
            maxcallnumbers: 10,
            new_rate: 20,
            new_burst: 30,
            max_unanswered: 40,
            max_unanswered_per_source: 45,
            max_calls: 50,
            control_rate: 60,
            control_burst: 70,
            answer_timeout: Duration::from_secs(80),
        }
    );
}

#[test]
fn out_of_range_values_are_reported_at_the_value() {
    let cases = [
        (
            "maxcallnumbers: 0",
            "1 to 32765 (table entries per source address)",
        ),
        (
            "maxcallnumbers: 32766",
            "1 to 32765 (table entries per source address)",
        ),
        (
            "new_rate: 100001",
            "1 to 100000 (per second, per source address)",
        ),
        ("new_burst: -1", "1 to 100000 (at once, per source address)"),
        (
            "max_unanswered: 0",
            "1 to 32765 (exchanges waiting for a first reply)",
        ),
        (
            "max_unanswered_per_source: 32766",
            "1 to 32765 (exchanges waiting for a first reply, per source address)",
        ),
        ("max_calls: 40000", "1 to 32765 (table entries)"),
        (
            "control_rate: 0",
            "1 to 10000 (frames per second, per call leg)",
        ),
        (
            "control_burst: 10001",
            "1 to 10000 (frames at once, per call leg)",
        ),
        ("answer_timeout: 9", "10 to 86400 (seconds)"),
    ];
    for (line, allowed) in cases {
        let (key, value) = line.split_once(": ").unwrap();
        let e = err(&format!("admission:\n  {line}\n{BASE}"));
        assert_eq!(
            e.to_string(),
            format!(
                "site.yaml:2:{}: admission.{key}: {value} is out of range; allowed: {allowed}",
                3 + key.len() + 2
            )
        );
        assert_eq!(e.kind, ErrorKind::Invalid);
    }
}

#[test]
fn wrong_shapes_and_unknown_keys() {
    let e = err(&format!("admission:\n  new_rate: fast\n{BASE}"));
    assert_eq!(
        e.to_string(),
        "site.yaml:2:13: admission.new_rate: expected a whole number, found `fast`; allowed: \
         1 to 100000 (per second, per source address)"
    );
    let e = err(&format!("admission:\n  maxcalls: 5\n{BASE}"));
    assert_eq!(e.kind, ErrorKind::UnknownKey);
    assert_eq!((e.line, e.column), (2, 3));
    assert!(e.to_string().contains("maxcallnumbers, new_rate"), "{e}");
    let e = err(&format!("admission: 5\n{BASE}"));
    assert_eq!((e.line, e.key_path.as_str()), (1, "admission"));
}
