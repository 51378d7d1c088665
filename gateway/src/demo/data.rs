//! Realistic records for the simulated registries. Deterministic, so the
//! demo prints the same URLs every time.

use serde_json::{json, Value};

/// (given name, family name, sex, birth date YYYY-MM-DD, municipality, street)
const PEOPLE: &[(&str, &str, char, &str, &str, &str)] = &[
    ("Mari", "Tamm", 'F', "1980-01-08", "Tallinn", "Narva mnt 5-12"),
    ("Jaan", "Saar", 'M', "1975-06-21", "Tartu", "Riia 14"),
    ("Kadri", "Sepp", 'F', "1992-11-03", "Pärnu", "Rüütli 31"),
    ("Andres", "Mägi", 'M', "1968-03-30", "Tallinn", "Pärnu mnt 102-7"),
    ("Liis", "Kask", 'F', "2001-09-17", "Narva", "Tallinna mnt 9"),
    ("Toomas", "Kukk", 'M', "1955-12-01", "Viljandi", "Tallinna 2"),
];

/// Estonian personal identification code (isikukood) with a valid checksum.
pub fn isikukood(sex: char, birth: &str, serial: u32) -> String {
    let year: u32 = birth[0..4].parse().unwrap_or(1980);
    let century = if year >= 2000 { 5 } else { 3 };
    let g = century + u32::from(sex == 'F');
    let base = format!("{g}{}{}{}{serial:03}", &birth[2..4], &birth[5..7], &birth[8..10]);
    let digits: Vec<u32> = base.bytes().map(|b| u32::from(b - b'0')).collect();
    let sum = |w: [u32; 10]| digits.iter().zip(w).map(|(d, w)| d * w).sum::<u32>() % 11;
    let mut check = sum([1, 2, 3, 4, 5, 6, 7, 8, 9, 1]);
    if check == 10 {
        check = sum([3, 4, 5, 6, 7, 8, 9, 1, 2, 3]) % 10;
    }
    format!("{base}{check}")
}

pub fn people() -> Vec<Value> {
    PEOPLE
        .iter()
        .enumerate()
        .map(|(i, (given, family, sex, birth, town, street))| {
            json!({
                "id": isikukood(*sex, birth, 271 + i as u32 * 13),
                "given_name": given,
                "family_name": family,
                "sex": sex.to_string(),
                "birth_date": birth,
                "citizenship": "EST",
                "residence": {
                    "country": "EE",
                    "municipality": town,
                    "street_address": street,
                },
                "status": "resident",
            })
        })
        .collect()
}

/// A person in the embassy copy's legacy schema: Estonian field names,
/// DD.MM.YYYY dates, `isik` / `elukoht` nesting.
pub fn legacy_person(home: &Value) -> Value {
    let birth = home["birth_date"].as_str().unwrap_or("0000-00-00");
    let (y, m, d) = (&birth[0..4], &birth[5..7], &birth[8..10]);
    let sex = if home["sex"] == "F" { "N" } else { "M" };
    json!({
        "isik": {
            "isikukood": home["id"],
            "eesnimi": home["given_name"],
            "perenimi": home["family_name"],
            "sugu": sex,
            "synniaeg": format!("{d}.{m}.{y}"),
            "kodakondsus": home["citizenship"],
            "staatus": if home["status"] == "resident" { "elanik" } else { "muu" },
        },
        "elukoht": {
            "riik": home["residence"]["country"],
            "omavalitsus": home["residence"]["municipality"],
            "aadress": home["residence"]["street_address"],
        },
    })
}

/// A people-list entry in the legacy schema.
pub fn legacy_list_entry(home: &Value) -> Value {
    let name = format!(
        "{} {}",
        home["given_name"].as_str().unwrap_or(""),
        home["family_name"].as_str().unwrap_or("")
    );
    json!({"isikukood": home["id"], "nimi": name})
}

pub fn tax_declaration(person: &Value) -> Value {
    let id = person["id"].as_str().unwrap_or_default();
    let seed: u64 = id.bytes().map(u64::from).sum();
    let income = 18_000 + (seed * 733) % 42_000;
    json!({
        "taxpayer_id": id,
        "year": 2025,
        "form": "FORM_A",
        "status": "accepted",
        "income_eur": income,
        "tax_withheld_eur": income * 22 / 100,
        "refund_eur": (seed % 9) * 37,
        "submitted_at": "2026-02-15T09:12:44Z",
    })
}

pub fn companies() -> Vec<Value> {
    vec![
        json!({"registry_code": "10137319", "name": "Kalev AS", "legal_form": "AS", "status": "registered",
               "founded": "1994-10-20", "seat": "Harju maakond, Tallinn", "emtak": "10821"}),
        json!({"registry_code": "16351982", "name": "Põhjala Andmed OÜ", "legal_form": "OÜ", "status": "registered",
               "founded": "2021-11-02", "seat": "Tartu maakond, Tartu", "emtak": "62011"}),
        json!({"registry_code": "80123456", "name": "Eesti Mesinike Selts MTÜ", "legal_form": "MTÜ",
               "status": "registered", "founded": "1998-05-14", "seat": "Viljandi maakond, Viljandi", "emtak": "94991"}),
    ]
}

pub fn gazette_acts() -> Vec<Value> {
    vec![
        json!({"id": "112032026004", "title": "Riigikaitseseaduse muutmise seadus", "type": "seadus",
               "publication": "RT I, 12.03.2026, 4", "in_force_from": "2026-04-01", "issuer": "Riigikogu"}),
        json!({"id": "105012026002", "title": "Rahvastikuregistri seaduse muutmise seadus", "type": "seadus",
               "publication": "RT I, 05.01.2026, 2", "in_force_from": "2026-02-01", "issuer": "Riigikogu"}),
        json!({"id": "320112026011", "title": "Andmesaatkonna teenuste kord", "type": "määrus",
               "publication": "RT IV, 20.11.2026, 11", "in_force_from": "2026-12-01", "issuer": "Vabariigi Valitsus"}),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isikukood_checksum_matches_a_known_code() {
        // A widely published sample code: 37605030299.
        assert_eq!(isikukood('M', "1976-05-03", 29), "37605030299");
    }
}
