//! A user's query never gets a 5xx: whatever the text, the real server answers 200 or a 4xx
//! naming the problem; a 5xx is the server's own fault. Sent over records of the FIM tables:
//! every query of the public corpus (154 queries pasted from Sentinel, Azure docs and community
//! repositories, `kql/tests/data/public-queries.jsonl`, also the fuzzer's seed corpus), mutations
//! of them as the fuzzer makes (a character deleted or replaced, the text cut short), and
//! sequences of KQL tokens as the property test makes (`kql/tests/data/kql-tokens.json`).

mod common;

use common::{Server, post_json};
use rand::{Rng, SeedableRng};

/// The token list's table and column names, as names of the FIM tables and their columns.
const RENAMES: [(&str, &str); 6] = [
    ("T", "ConfigurationChange"),
    ("U", "Heartbeat"),
    ("x", "Size"),
    ("a", "Computer"),
    ("t", "TimeGenerated"),
    ("d", "AdditionalFields"),
];

/// Runs `queries` through the query API: how many got 200 and a 4xx, and every 5xx.
fn answers(url: &str, queries: &[String]) -> ([usize; 2], Vec<String>) {
    let mut answered = [0usize; 2];
    let mut server_errors = Vec::new();
    for query in queries {
        let body = serde_json::json!({ "query": query, "timespan": "P1D" }).to_string();
        let (status, answer) = post_json(url, &body);
        match status {
            200 => answered[0] += 1,
            400..=499 => answered[1] += 1,
            _ => server_errors.push(format!("{query:?} -> {status}: {answer}")),
        }
    }
    (answered, server_errors)
}

/// Three mutations of each corpus query: a character deleted, one replaced by a character KQL
/// gives meaning to, the text cut short.
fn mutations(queries: &[String], rng: &mut rand_chacha::ChaCha8Rng) -> Vec<String> {
    const JUNK: [char; 12] = ['(', ')', '|', '\'', '"', '[', ']', '.', '!', '=', '{', '\u{a0}'];
    let mut out = Vec::new();
    for query in queries {
        let chars: Vec<char> = query.chars().collect();
        if chars.is_empty() {
            continue;
        }
        let mut deleted = chars.clone();
        deleted.remove(rng.random_range(0..chars.len()));
        let mut replaced = chars.clone();
        replaced[rng.random_range(0..chars.len())] = JUNK[rng.random_range(0..JUNK.len())];
        let cut: String = chars[..rng.random_range(0..chars.len())].iter().collect();
        out.extend([deleted.into_iter().collect(), replaced.into_iter().collect(), cut]);
    }
    out
}

/// `count` sequences of up to 30 KQL tokens, the table and column names made the FIM tables'.
fn token_sequences(count: usize, rng: &mut rand_chacha::ChaCha8Rng) -> Vec<String> {
    let tokens: Vec<String> =
        serde_json::from_str(include_str!("../kql/tests/data/kql-tokens.json")).expect("a JSON array of strings");
    let rename =
        |token: &String| RENAMES.iter().find(|(from, _)| from == token).map_or(token.clone(), |(_, to)| to.to_string());
    (0..count)
        .map(|_| {
            let length = rng.random_range(0..30);
            (0..length).map(|_| rename(&tokens[rng.random_range(0..tokens.len())])).collect::<Vec<_>>().join(" ")
        })
        .collect()
}

#[test]
fn no_query_text_gets_a_server_error() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let ws = std::fs::read_to_string(dir.path().join("workspace-id")).unwrap().trim().to_string();
    common::post_fim_samples(&server.url);
    let url = format!("{}/v1/workspaces/{ws}/query", server.url);
    let corpus: Vec<String> = common::public_corpus().into_iter().map(|(_, query)| query).collect();
    let (answered, server_errors) = answers(&url, &corpus);
    assert!(
        server_errors.is_empty(),
        "{} corpus queries got a 5xx:\n{}",
        server_errors.len(),
        server_errors.join("\n")
    );
    assert_eq!(answered[0] + answered[1], 154, "{answered:?}");
    eprintln!("corpus through the API: {} answered 200, {} refused with a 4xx", answered[0], answered[1]);

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(14);
    let generated: Vec<String> =
        mutations(&corpus, &mut rng).into_iter().chain(token_sequences(600, &mut rng)).collect();
    let (answered, server_errors) = answers(&url, &generated);
    assert!(
        server_errors.is_empty(),
        "{} generated queries got a 5xx:\n{}",
        server_errors.len(),
        server_errors.join("\n")
    );
    eprintln!("{} mutated and generated queries: {} answered 200, {} a 4xx", generated.len(), answered[0], answered[1]);
}

#[test]
fn a_query_that_fails_on_its_values_is_a_400_that_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let ws = std::fs::read_to_string(dir.path().join("workspace-id")).unwrap().trim().to_string();
    let record = r#"[{"Computer":"web1","ConfigChangeType":"Files","FileSystemPath":"/etc/passwd","Size":10}]"#;
    let (status, body) = post_json(&format!("{}/v1/tables/ConfigurationChange/records", server.url), record);
    assert_eq!(status, 200, "{body}");
    let url = format!("{}/v1/workspaces/{ws}/query", server.url);
    for (query, cause) in [
        ("ConfigurationChange | where Size > 'abc'", "Cannot cast string 'abc'"),
        ("print x = 1 / 0", "Divide by zero"),
    ] {
        let (status, answer) = post_json(&url, &serde_json::json!({ "query": query }).to_string());
        assert_eq!(status, 400, "{query}: {answer}");
        assert_eq!(answer["error"]["innererror"]["code"], "EvaluationError", "{query}: {answer}");
        let message = answer["error"]["innererror"]["message"].as_str().unwrap();
        assert!(message.starts_with("the query failed while it ran: ") && message.contains(cause), "{message}");
    }
}
