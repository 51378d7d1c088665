//! Legacy (embassy) schema to home schema. Pure functions, unit-tested on
//! the host (`cargo test` in plugins/ with the host target).
//!
//! | legacy                        | home                          |
//! | ----------------------------- | ----------------------------- |
//! | `isik.isikukood`              | `id`                          |
//! | `isik.eesnimi` / `perenimi`   | `given_name` / `family_name`  |
//! | `isik.sugu` `N` / `M`         | `sex` `F` / `M`               |
//! | `isik.synniaeg` `08.01.1980`  | `birth_date` `1980-01-08`     |
//! | `isik.kodakondsus`            | `citizenship`                 |
//! | `isik.staatus` `elanik`       | `status` `resident`           |
//! | `elukoht.riik` / `omavalitsus` / `aadress` | `residence.country` / `municipality` / `street_address` |
//! | `{"isikud": [{isikukood, nimi}]}` | `{"people": [{id, name}]}` |

use serde_json::{json, Map, Value};

/// The home-schema form of a legacy document, or `None` when `legacy` is
/// not a shape this plugin knows (then the response passes untouched).
pub fn to_home(legacy: &Value) -> Option<Value> {
    if let Some(list) = legacy.get("isikud").and_then(Value::as_array) {
        let people: Vec<Value> =
            list.iter().map(|p| json!({"id": p["isikukood"], "name": p["nimi"]})).collect();
        return Some(json!({ "people": people }));
    }
    let isik = legacy.get("isik")?.as_object()?;
    let elukoht = legacy.get("elukoht").and_then(Value::as_object);
    let mut out = Map::new();
    out.insert("id".into(), field(isik, "isikukood"));
    out.insert("given_name".into(), field(isik, "eesnimi"));
    out.insert("family_name".into(), field(isik, "perenimi"));
    out.insert("sex".into(), sex(isik.get("sugu")));
    out.insert("birth_date".into(), date(isik.get("synniaeg")));
    out.insert("citizenship".into(), field(isik, "kodakondsus"));
    out.insert(
        "residence".into(),
        json!({
            "country": elukoht.map(|e| field(e, "riik")).unwrap_or(Value::Null),
            "municipality": elukoht.map(|e| field(e, "omavalitsus")).unwrap_or(Value::Null),
            "street_address": elukoht.map(|e| field(e, "aadress")).unwrap_or(Value::Null),
        }),
    );
    out.insert("status".into(), status(isik.get("staatus")));
    Some(Value::Object(out))
}

fn field(obj: &Map<String, Value>, key: &str) -> Value {
    obj.get(key).cloned().unwrap_or(Value::Null)
}

/// `N` (naine) is `F`; `M` (mees) stays `M`.
fn sex(v: Option<&Value>) -> Value {
    match v.and_then(Value::as_str) {
        Some("N") => "F".into(),
        Some("M") => "M".into(),
        Some(other) => other.into(),
        None => Value::Null,
    }
}

/// `DD.MM.YYYY` to `YYYY-MM-DD`; anything else is kept as it was.
fn date(v: Option<&Value>) -> Value {
    let Some(text) = v.and_then(Value::as_str) else { return Value::Null };
    let parts: Vec<&str> = text.split('.').collect();
    match parts.as_slice() {
        [d, m, y] if d.len() == 2 && m.len() == 2 && y.len() == 4 => format!("{y}-{m}-{d}").into(),
        _ => text.into(),
    }
}

fn status(v: Option<&Value>) -> Value {
    match v.and_then(Value::as_str) {
        Some("elanik") => "resident".into(),
        Some("lahkunud") => "emigrated".into(),
        Some("surnud") => "deceased".into(),
        Some(other) => other.into(),
        None => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translates_a_person_field_by_field() {
        let legacy = json!({
            "isik": {"isikukood": "48001080271", "eesnimi": "Mari", "perenimi": "Tamm", "sugu": "N",
                     "synniaeg": "08.01.1980", "kodakondsus": "EST", "staatus": "elanik"},
            "elukoht": {"riik": "EE", "omavalitsus": "Tallinn", "aadress": "Narva mnt 5-12"}
        });
        let home = to_home(&legacy).unwrap();
        assert_eq!(home["id"], "48001080271");
        assert_eq!(home["sex"], "F");
        assert_eq!(home["birth_date"], "1980-01-08");
        assert_eq!(home["residence"]["street_address"], "Narva mnt 5-12");
        assert_eq!(home["status"], "resident");
    }

    #[test]
    fn unknown_shapes_pass_untouched() {
        assert!(to_home(&json!({"id": "1"})).is_none());
    }
}
