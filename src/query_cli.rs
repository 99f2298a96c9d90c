//! `fimlake query`: runs KQL on a server's query API and prints the result as a table, JSON or
//! CSV.

use std::io::Read;

use anyhow::{Context, bail};
use serde_json::{Value, json};

pub struct QueryOptions {
    pub server: String,
    pub workspace: Option<String>,
    pub data_dir: std::path::PathBuf,
    pub timespan: Option<String>,
    pub format: String,
    pub query: Option<String>,
}

pub async fn run(opts: QueryOptions) -> anyhow::Result<String> {
    let text = match opts.query.as_deref() {
        Some("-") | None => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).context("reading the query from standard input")?;
            s
        }
        Some(q) if q.starts_with('@') => {
            std::fs::read_to_string(&q[1..]).with_context(|| format!("reading the query file {}", &q[1..]))?
        }
        Some(q) => q.to_string(),
    };
    let ws = match opts.workspace {
        Some(w) => w,
        None => {
            let p = opts.data_dir.join("workspace-id");
            std::fs::read_to_string(&p)
                .map(|s| s.trim().to_string())
                .with_context(|| format!("no --workspace given and {} cannot be read", p.display()))?
        }
    };
    let url = format!("{}/v1/workspaces/{ws}/query", opts.server.trim_end_matches('/'));
    let body = json!({"query": text, "timespan": opts.timespan});
    let resp = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .with_context(|| format!("sending the query to {url}"))?;
    let status = resp.status();
    let v: Value = serde_json::from_slice(&resp.bytes().await?).context("the server's answer is not JSON")?;
    if !status.is_success() {
        let e = &v["error"];
        let detail = e["innererror"]["context"].as_str().or(e["innererror"]["message"].as_str()).unwrap_or("");
        bail!(
            "{} ({status}): {}\n{detail}",
            e["code"].as_str().unwrap_or("error"),
            e["message"].as_str().unwrap_or("")
        );
    }
    let table = &v["tables"][0];
    let names: Vec<String> = table["columns"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["name"].as_str().unwrap_or("").to_string())
        .collect();
    let rows: Vec<Vec<String>> = table["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r.as_array().into_iter().flatten().map(cell).collect())
        .collect();
    let mut out = match opts.format.as_str() {
        "json" => serde_json::to_string_pretty(&v)?,
        "csv" => {
            let mut s = names.iter().map(|n| csv(n)).collect::<Vec<_>>().join(",");
            for r in &rows {
                s.push('\n');
                s.push_str(&r.iter().map(|c| csv(c)).collect::<Vec<_>>().join(","));
            }
            s
        }
        "table" => render_table(&names, &rows),
        other => bail!("unknown --format '{other}': use table, json or csv"),
    };
    if let Some(err) = v.get("error") {
        out.push_str(&format!("\nwarning: {}", err["details"][0]["message"].as_str().unwrap_or("partial result")));
    }
    Ok(out)
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn csv(s: &str) -> String {
    if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

fn render_table(names: &[String], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = names.iter().map(|n| n.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join(" | ")
            .trim_end()
            .to_string()
    };
    let mut out = vec![line(names), widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("-+-")];
    out.extend(rows.iter().map(|r| line(r)));
    out.push(format!("({} row{})", rows.len(), if rows.len() == 1 { "" } else { "s" }));
    out.join("\n")
}
