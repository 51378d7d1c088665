//! Scenario parsing: good files compile, every bad key is named.

use super::*;

const GOOD: &str = r#"
name = "t"
target = "http://127.0.0.1:8080"
site_header = "x-served-by"
[load]
mode = "open"
connections = 8
[[load.stages]]
duration = "2s"
rate = 10
to = 50
[[load.stages]]
duration = "1s"
rate = 50
[[classes]]
name = "submit"
weight = 2
method = "POST"
paths = ["/tax/declarations"]
body = '{"year":2025}'
headers = ["content-type: application/json"]
[[classes]]
name = "browse"
paths = ["/gazette/acts"]
[[events]]
name = "down"
at = "1s"
method = "POST"
url = "http://127.0.0.1:18100/sites/population/home/down"
[failover]
home_site = "home"
down_event = "down"
"#;

fn errors(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn a_full_scenario_compiles() {
    let s = parse(GOOD).unwrap();
    assert_eq!(s.targets, vec![("target".to_string(), "http://127.0.0.1:8080".to_string())]);
    assert_eq!(s.load.duration(), Duration::from_secs(3));
    let Load::Open { connections, schedule } = &s.load else { panic!("open loop expected") };
    assert_eq!((*connections, schedule.total()), (8, 110));
    assert_eq!(s.classes[0].method, Method::POST);
    assert_eq!(&s.classes[0].body[..], br#"{"year":2025}"#);
    assert_eq!(s.classes[1].weight, 1);
    assert_eq!(s.events[0].at, Duration::from_secs(1));
    assert_eq!(s.failover.as_ref().unwrap().home_site, "home");
}

#[test]
fn unknown_and_missing_keys_name_their_path() {
    let e = errors(&GOOD.replace("weight = 2", "wieght = 2"));
    assert!(e.starts_with("classes[0]") && e.contains("wieght"), "{e}");
    let e = errors(&GOOD.replace("paths = [\"/gazette/acts\"]", ""));
    assert!(e.starts_with("classes[1]") && e.contains("paths"), "{e}");
    let e = errors(&GOOD.replace("rate = 50\n[[classes]]", "rate = \"fast\"\n[[classes]]"));
    assert!(e.starts_with("load.stages[1].rate"), "{e}");
}

#[test]
fn invalid_values_are_all_reported_by_key() {
    let bad = GOOD
        .replace("duration = \"1s\"", "duration = \"1 fortnight\"")
        .replace("method = \"POST\"\npaths", "method = \"P O\"\npaths")
        .replace("down_event = \"down\"", "down_event = \"dwon\"")
        .replace("to = 50", "to = -5");
    let e = errors(&bad);
    for key in ["load.stages[1].duration", "classes[0].method", "failover.down_event", "load.stages[0].to"] {
        assert!(e.contains(key), "{key} missing from:\n{e}");
    }
}

#[test]
fn load_modes_check_their_own_keys() {
    let closed = GOOD.replace("mode = \"open\"", "mode = \"closed\"");
    let e = errors(&closed);
    assert!(e.contains("load.duration: missing") && e.contains("load.stages: only for"), "{e}");
    let e = errors(&GOOD.replace("mode = \"open\"", "mode = \"ajar\""));
    assert!(e.contains("load.mode"), "{e}");
    let e = errors(&GOOD.replace("target = \"http://127.0.0.1:8080\"", ""));
    assert!(e.contains("target: missing"), "{e}");
}

#[test]
fn target_flags_replace_the_file_targets() {
    let mut s = parse(GOOD).unwrap();
    override_targets(&mut s, &["gateway=http://127.0.0.1:1/".into(), "http://127.0.0.1:2".into()]).unwrap();
    assert_eq!(s.targets[0], ("gateway".into(), "http://127.0.0.1:1/".into()));
    assert_eq!(s.targets[1].0, "target");
    assert!(override_targets(&mut s, &["x=ftp://a".into()]).is_err());
    assert!(override_targets(&mut s, &["a=http://x".into(), "a=http://y".into()]).is_err());
}
