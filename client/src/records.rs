//! Posting records to `/v1/tables/{table}/records`, gzipped.

use std::io::Write;
use std::time::Duration;

use crate::ca::ClientError;
use crate::retry::{self, Backoff};

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Sent {
    /// Stored; the server's count of accepted records.
    Accepted(u64),
    /// Worth another attempt (no answer, 408, 429, 5xx), after at least this long when the
    /// server said so.
    Retry { after: Option<Duration>, message: String },
    /// Refused for good (another 4xx): the same body would be refused again.
    Rejected { status: u16, message: String },
}

/// One post: what to send, where, as whom.
#[derive(Debug, Clone, Copy)]
pub struct Post<'a> {
    /// `{server}/v1/tables/{table}/records`.
    pub url: &'a str,
    pub api_key: Option<&'a str>,
    /// `application/json` (an array) or `application/x-ndjson`.
    pub content_type: &'a str,
    pub timeout: Duration,
}

/// The records endpoint of `table` on `server`.
pub fn url(server: &str, table: &str) -> String {
    format!("{}/v1/tables/{table}/records", server.trim_end_matches('/'))
}

/// `body` gzipped (fast level: the network is slower than the compressor).
pub fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(body).expect("writing to memory");
    encoder.finish().expect("writing to memory")
}

/// One attempt at posting an already gzipped body.
pub async fn post(client: &reqwest::Client, post: Post<'_>, gzipped: Vec<u8>) -> Sent {
    let mut request = client
        .post(post.url)
        .header(reqwest::header::CONTENT_TYPE, post.content_type)
        .header(reqwest::header::CONTENT_ENCODING, "gzip")
        .timeout(post.timeout)
        .body(gzipped);
    if let Some(key) = post.api_key {
        request = request.bearer_auth(key);
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) if retry::transient_error(&e) => {
            return Sent::Retry { after: None, message: format!("{}: {e}", post.url) };
        }
        Err(e) => return Sent::Rejected { status: 0, message: format!("{}: {e}", post.url) },
    };
    let status = response.status().as_u16();
    let after = retry::retry_after(response.headers());
    let text = response.text().await.unwrap_or_default();
    if (200..300).contains(&status) {
        return match serde_json::from_str::<serde_json::Value>(&text).ok().and_then(|v| v["accepted"].as_u64()) {
            Some(accepted) => Sent::Accepted(accepted),
            None => Sent::Rejected { status, message: format!("the answer has no 'accepted' count: {text}") },
        };
    }
    let message = error_message(&text);
    if retry::transient(status) {
        Sent::Retry { after, message: format!("{}: {status}: {message}", post.url) }
    } else {
        Sent::Rejected { status, message }
    }
}

/// Posts until the records are accepted, refused for good, or `attempts` attempts failed,
/// waiting by `backoff` (and `Retry-After`) in between.
pub async fn post_until_accepted(
    client: &reqwest::Client,
    post: Post<'_>,
    gzipped: Vec<u8>,
    attempts: usize,
    backoff: Backoff,
) -> Result<u64, ClientError> {
    assert!(attempts > 0, "at least one attempt");
    let mut last = String::new();
    for attempt in 1..=attempts {
        match self::post(client, post, gzipped.clone()).await {
            Sent::Accepted(accepted) => return Ok(accepted),
            Sent::Rejected { status, message } => return Err(ClientError::Refused { status, message }),
            Sent::Retry { after, message } => {
                last = message;
                if attempt < attempts {
                    tokio::time::sleep(backoff.delay(attempt, after)).await;
                }
            }
        }
    }
    Err(ClientError::GaveUp { attempts, last })
}

/// The message of an API error (`{"error": {"message": ...}}`), else the text, cut short.
fn error_message(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| text.chars().take(500).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_round_trips() {
        use std::io::Read;
        let gzipped = gzip(b"{\"a\":1}\n");
        let mut decoder = flate2::read::GzDecoder::new(&gzipped[..]);
        let mut text = String::new();
        decoder.read_to_string(&mut text).unwrap();
        assert_eq!(text, "{\"a\":1}\n");
        assert_eq!(url("http://h:1/", "Heartbeat"), "http://h:1/v1/tables/Heartbeat/records");
    }

    /// A server on 127.0.0.1 that gives each answer in turn, one per connection, and counts
    /// the requests.
    async fn scripted_server(answers: Vec<&'static str>) -> (String, tokio::task::JoinHandle<usize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1/tables/Heartbeat/records", listener.local_addr().unwrap());
        let handle = tokio::spawn(async move {
            let mut served = 0;
            for answer in answers {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                // Headers, then the body by its Content-Length.
                loop {
                    let n = socket.read(&mut buffer).await.unwrap();
                    request.extend_from_slice(&buffer[..n]);
                    let text = String::from_utf8_lossy(&request).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length: usize = text
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap())
                            })
                            .unwrap_or(0);
                        if request.len() >= end + 4 + length {
                            break;
                        }
                    }
                    assert!(n > 0, "the client closed early");
                }
                socket.write_all(answer.as_bytes()).await.unwrap();
                served += 1;
            }
            served
        });
        (url, handle)
    }

    #[tokio::test]
    async fn a_408_and_a_503_are_retried_until_the_records_are_accepted() {
        let (url, server) = scripted_server(vec![
            "HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            "HTTP/1.1 503 Service Unavailable\r\nretry-after: 0\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 14\r\nconnection: close\r\n\r\n{\"accepted\":1}",
        ])
        .await;
        let client = reqwest::Client::new();
        let post =
            Post { url: &url, api_key: Some("k"), content_type: "application/json", timeout: Duration::from_secs(5) };
        let backoff = Backoff { min: Duration::from_millis(10), max: Duration::from_millis(20) };
        let accepted = post_until_accepted(&client, post, gzip(b"[{}]"), 5, backoff).await.unwrap();
        assert_eq!(accepted, 1);
        assert_eq!(server.await.unwrap(), 3);
    }

    #[tokio::test]
    async fn a_400_is_refused_for_good_with_the_servers_message() {
        let body = r#"{"error":{"code":"InvalidRecord","message":"record 1: bad"}}"#;
        let answer = format!(
            "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let (url, server) = scripted_server(vec![Box::leak(answer.into_boxed_str())]).await;
        let client = reqwest::Client::new();
        let post = Post { url: &url, api_key: None, content_type: "application/json", timeout: Duration::from_secs(5) };
        let backoff = Backoff { min: Duration::from_millis(10), max: Duration::from_millis(20) };
        let e = post_until_accepted(&client, post, gzip(b"[{}]"), 5, backoff).await.unwrap_err();
        assert_eq!(e.to_string(), "the server refused the records (400): record 1: bad");
        assert_eq!(server.await.unwrap(), 1);
    }

    #[test]
    fn an_api_error_gives_its_message() {
        assert_eq!(error_message(r#"{"error":{"code":"InvalidRecord","message":"record 1: bad"}}"#), "record 1: bad");
        assert_eq!(error_message("plain"), "plain");
    }
}
