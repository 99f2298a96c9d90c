//! An S3-protocol server (s3s-fs) on 127.0.0.1 serving a local directory, for the cluster step:
//! the nodes of a cluster share their tables in a bucket. Every request it answers is logged,
//! one line each, to `requests.log` beside the served directory (where a scan over a slow bucket
//! waits is read off it: [`RequestLog`]).

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use hyper_util::service::TowerToHyperService;

const ACCESS_KEY: &str = "bench-access-key";
const SECRET_KEY: &str = "bench-secret-key";
/// The one bucket, a directory under the served root.
pub const BUCKET: &str = "bench";

/// Serves until dropped.
pub struct S3Server {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl S3Server {
    /// Serves `root` (emptied first; the bucket made in it) on a free port of 127.0.0.1,
    /// answering each request `latency` after it came (none: at once), each logged to
    /// `requests.log` beside `root`.
    pub async fn start(root: &Path, latency: Duration) -> anyhow::Result<S3Server> {
        if root.exists() {
            std::fs::remove_dir_all(root).with_context(|| format!("emptying {}", root.display()))?;
        }
        std::fs::create_dir_all(root.join(BUCKET)).with_context(|| format!("creating {}", root.display()))?;
        let fs = s3s_fs::FileSystem::new(root).map_err(|e| anyhow::anyhow!("serving {}: {e:?}", root.display()))?;
        let mut builder = s3s::service::S3ServiceBuilder::new(fs);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = builder.build();
        let log = RequestLog::create(&root.with_file_name("requests.log"))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let http = ConnBuilder::new(TokioExecutor::new());
            loop {
                let Ok((socket, peer)) = listener.accept().await else { continue };
                let (service, log) = (service.clone(), log.clone());
                let delayed = tower::service_fn(move |request: http::Request<_>| {
                    let (service, log) = (service.clone(), log.clone());
                    async move {
                        let started = RequestStart::of(&request, peer.port());
                        if !latency.is_zero() {
                            tokio::time::sleep(latency).await;
                        }
                        let response = tower::ServiceExt::oneshot(service, request).await;
                        if let Ok(response) = &response {
                            log.write(&started, response.status().as_u16());
                        }
                        response
                    }
                });
                let connection = http.serve_connection(TokioIo::new(socket), TowerToHyperService::new(delayed));
                tokio::spawn(connection.into_owned());
            }
        });
        Ok(S3Server { addr, task })
    }

    /// The `[storage]` lines that put a server's tables under `s3://bench/<prefix>` here.
    pub fn storage_config(&self, prefix: &str) -> String {
        format!(
            "table_url = \"s3://{BUCKET}/{prefix}\"\n\
             object_store_options = {{ aws_endpoint = \"http://{}\", aws_allow_http = \"true\", \
             aws_access_key_id = \"{ACCESS_KEY}\", aws_secret_access_key = \"{SECRET_KEY}\", aws_region = \"us-east-1\" }}\n",
            self.addr
        )
    }
}

/// What is logged of a request when it comes.
struct RequestStart {
    at: SystemTime,
    method: String,
    path: String,
    range: String,
    peer_port: u16,
}

impl RequestStart {
    fn of<B>(request: &http::Request<B>, peer_port: u16) -> RequestStart {
        let range = request.headers().get(http::header::RANGE).and_then(|v| v.to_str().ok()).unwrap_or("-");
        RequestStart {
            at: SystemTime::now(),
            method: request.method().to_string(),
            path: request.uri().path().to_string(),
            range: range.to_string(),
            peer_port,
        }
    }
}

/// One line per request answered: when it came (Unix ms), how long it took to answer (ms, the
/// added latency included; the body may still be streaming), the client's port (a connection),
/// the method, the path, the `Range` header (`-`: none) and the status.
#[derive(Clone)]
struct RequestLog(Arc<Mutex<std::io::BufWriter<std::fs::File>>>);

impl RequestLog {
    fn create(path: &Path) -> anyhow::Result<RequestLog> {
        let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        Ok(RequestLog(Arc::new(Mutex::new(std::io::BufWriter::new(file)))))
    }

    fn write(&self, start: &RequestStart, status: u16) {
        let came = start.at.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
        let took = start.at.elapsed().unwrap_or_default().as_secs_f64() * 1000.0;
        let mut out = self.0.lock().expect("no writer panics holding the log");
        // A line lost to a full disk costs the profile only.
        let _ = writeln!(
            out,
            "{came} {took:.1} {} {} {} {} {status}",
            start.peer_port, start.method, start.path, start.range
        );
        let _ = out.flush();
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_request_is_answered_the_latency_late() {
        let dir = tempfile::tempdir().unwrap();
        let latency = Duration::from_millis(300);
        let server = S3Server::start(&dir.path().join("s3"), latency).await.unwrap();
        let url = format!("http://{}/{BUCKET}/", server.addr);
        for _ in 0..2 {
            let started = std::time::Instant::now();
            let response = reqwest::get(&url).await.unwrap();
            let took = started.elapsed();
            assert!(response.status().as_u16() > 0, "an answer, whatever it says to an unsigned request");
            assert!(took >= latency, "answered after {took:?}, before the {latency:?} it waits");
        }
    }
}
