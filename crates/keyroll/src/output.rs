//! Printing results: JSON shaped like the API response (the default, 4-space indented like
//! the aws CLI), or tables for people.

use std::io::Write;

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The API response as JSON.
    Json,
    /// Tables for people.
    Table,
    /// Comma-separated values (`keyroll report` only).
    Csv,
}

/// Writes `value` to stdout in the chosen format.
pub fn print<T: Serialize>(format: Format, value: &T) -> anyhow::Result<()> {
    let text = match format {
        // Straight from the response type, so members keep AWS's order.
        Format::Json => json(value)?,
        Format::Table => render(format, &serde_json::to_value(value)?)?,
        Format::Csv => anyhow::bail!(crate::UsageError(
            "--output csv is only for `keyroll report`; use json or table here".into()
        )),
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

pub fn render(format: Format, v: &Value) -> anyhow::Result<String> {
    Ok(match format {
        Format::Json => json(v)?,
        Format::Table | Format::Csv => {
            let mut s = String::new();
            table(v, &mut s);
            s
        }
    })
}

/// 4-space indented JSON, like the aws CLI.
fn json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<String> {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    value.serialize(&mut ser)?;
    buf.push(b'\n');
    Ok(String::from_utf8(buf)?)
}

fn new_table() -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    t
}

/// Objects become key/value tables; arrays of objects become one row per element; nested
/// lists of objects follow as their own tables.
fn table(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut t = new_table();
            let mut nested = Vec::new();
            for (k, val) in map {
                match val {
                    Value::Array(items) if items.iter().any(|i| i.is_object()) => {
                        nested.push((k, val))
                    }
                    _ => {
                        t.add_row(vec![k.clone(), cell(k, val)]);
                    }
                }
            }
            if !t.is_empty() {
                out.push_str(&t.to_string());
                out.push('\n');
            }
            for (k, val) in nested {
                out.push_str(&format!("{k}:\n"));
                table(val, out);
            }
        }
        Value::Array(items) if items.iter().all(|i| i.is_object()) && !items.is_empty() => {
            let mut cols: Vec<String> = Vec::new();
            for i in items {
                for k in i.as_object().into_iter().flat_map(|o| o.keys()) {
                    if !cols.contains(k) {
                        cols.push(k.clone());
                    }
                }
            }
            let mut t = new_table();
            t.set_header(cols.clone());
            for i in items {
                let row: Vec<String> = cols
                    .iter()
                    .map(|c| i.get(c).map(|v| cell(c, v)).unwrap_or_default())
                    .collect();
                t.add_row(row);
            }
            out.push_str(&t.to_string());
            out.push('\n');
        }
        Value::Array(items) if items.is_empty() => out.push_str("(none)\n"),
        other => {
            out.push_str(&cell("", other));
            out.push('\n');
        }
    }
}

/// One cell: dates (`...Date` keys, epoch seconds) in RFC 3339, lists joined, maps as
/// `key: value` lines.
fn cell(key: &str, v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Number(n) if key.ends_with("Date") || key == "Started" || key == "Ended" => n
            .as_f64()
            .map(|f| keyroll_core::time::Timestamp((f * 1000.0).round() as i64).to_rfc3339())
            .unwrap_or_else(|| n.to_string()),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Array(a) => a
            .iter()
            .map(|x| cell(key, x))
            .collect::<Vec<_>>()
            .join(", "),
        Value::Object(o) => {
            if let (Some(Value::String(k)), Some(val)) = (o.get("Key"), o.get("Value")) {
                return format!("{k}={}", cell("", val));
            }
            o.iter()
                .map(|(k, x)| format!("{k}: {}", cell(k, x)))
                .collect::<Vec<_>>()
                .join("\n")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_uses_four_space_indent() {
        let s = render(Format::Json, &json!({"ARN": "a", "Name": "n"})).unwrap();
        assert_eq!(s, "{\n    \"ARN\": \"a\",\n    \"Name\": \"n\"\n}\n");
    }

    #[test]
    fn table_renders_dates_and_nested_lists() {
        let v = json!({
            "Name": "db",
            "CreatedDate": 1700000000.5,
            "VersionIdsToStages": {"v1": ["AWSCURRENT"]},
            "Versions": [{"VersionId": "v1", "VersionStages": ["AWSCURRENT"]}]
        });
        let s = render(Format::Table, &v).unwrap();
        assert!(s.contains("2023-11-14T22:13:20.500Z"), "{s}");
        assert!(s.contains("v1: AWSCURRENT"), "{s}");
        assert!(s.contains("Versions:"), "{s}");
        assert!(s.contains("VersionStages"), "{s}");
    }
}
