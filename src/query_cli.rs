//! `fimlake query`: runs KQL on a server's query API and prints the result as a table, JSON or
//! CSV.

use std::io::Read;

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// Where the query runs.
pub enum Target {
    /// A server's query API; the workspace id defaults to the server's own.
    Server { connection: crate::client_profile::Connection, workspace: Option<String> },
    /// A data directory, read-only, in this process.
    DataDir { storage: fimlake_storage::StorageConfig, query: fimlake_query::QueryConfig },
}

pub struct QueryOptions {
    pub target: Target,
    pub timespan: Option<String>,
    pub format: String,
    pub explain: bool,
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
    let v = match opts.target {
        Target::Server { connection, workspace } => {
            let path = if opts.explain { "explain" } else { "query" };
            let client = fimlake_client::client_builder(connection.ca_file.as_deref())?.build()?;
            let api_key = connection.api_key.as_deref();
            let workspace = match workspace {
                Some(workspace) => workspace,
                None => discover_workspace(&client, &connection.server, api_key).await?,
            };
            remote(&client, &connection.server, &workspace, api_key, path, &text, opts.timespan.as_deref()).await?
        }
        Target::DataDir { storage, query } => {
            local(&storage, &query, &text, opts.timespan.as_deref(), opts.explain).await?
        }
    };
    if opts.explain {
        return Ok(v["plan"].as_str().unwrap_or_default().trim_end().to_string());
    }
    render(&v, &opts.format)
}

/// The workspace id the server answers for (`GET /v1/workspace`, any valid key).
async fn discover_workspace(client: &reqwest::Client, server: &str, api_key: Option<&str>) -> anyhow::Result<String> {
    let url = format!("{}/v1/workspace", server.trim_end_matches('/'));
    let mut request = client.get(&url);
    if let Some(key) = api_key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.with_context(|| format!("GET {url}"))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or_default();
    if !status.is_success() {
        let message = body["error"]["message"].as_str().unwrap_or_default();
        anyhow::bail!("asking {url} for the workspace id: {status} {message} (or give --workspace)");
    }
    body["workspaceId"].as_str().map(str::to_string).with_context(|| format!("{url} names no workspace id"))
}

/// Runs the query on a server's API and returns its JSON answer.
async fn remote(
    client: &reqwest::Client,
    server: &str,
    ws: &str,
    api_key: Option<&str>,
    path: &str,
    text: &str,
    timespan: Option<&str>,
) -> anyhow::Result<Value> {
    let url = format!("{}/v1/workspaces/{ws}/{path}", server.trim_end_matches('/'));
    let body = json!({"query": text, "timespan": timespan});
    let mut req = client.post(&url);
    if let Some(k) = api_key {
        req = req.bearer_auth(k);
    }
    let resp = req
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
    Ok(v)
}

/// Runs the query in this process over a read-only view of the data directory, and returns the
/// same JSON a server would.
async fn local(
    storage: &fimlake_storage::StorageConfig,
    config: &fimlake_query::QueryConfig,
    text: &str,
    timespan: Option<&str>,
    explain: bool,
) -> anyhow::Result<Value> {
    let engine = fimlake_query::QueryEngine::read_only(storage, config)
        .await
        .with_context(|| format!("reading the tables of {}", storage.data_dir.display()))?;
    let range = match timespan {
        None => None,
        Some(t) => Some(
            fimlake_query::timespan::parse_timespan(t, chrono::Utc::now().timestamp_micros())
                .map_err(|e| anyhow::anyhow!("--timespan: {e}"))?,
        ),
    };
    let failed = |e: fimlake_query::QueryError| match e {
        fimlake_query::QueryError::Kql(k) => anyhow::anyhow!("{}", k.render()),
        other => anyhow::anyhow!("{other}"),
    };
    if explain {
        let plan = engine.explain(text, range).await.map_err(failed)?;
        return Ok(json!({ "plan": plan }));
    }
    let result = engine.run(text, range, fimlake_query::api::MAX_WAIT).await.map_err(failed)?;
    Ok(fimlake_query::encode::to_json(&result, engine.max_rows))
}

/// The answer's first table as text, JSON or CSV.
fn render(v: &Value, format: &str) -> anyhow::Result<String> {
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
    let mut out = match format {
        "json" => serde_json::to_string_pretty(v)?,
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
