//! An S3-protocol server (s3s-fs) on 127.0.0.1 serving a local directory, for the cluster step:
//! the nodes of a cluster share their tables in a bucket.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

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
    /// answering each request `latency` after it came (none: at once).
    pub async fn start(root: &Path, latency: Duration) -> anyhow::Result<S3Server> {
        if root.exists() {
            std::fs::remove_dir_all(root).with_context(|| format!("emptying {}", root.display()))?;
        }
        std::fs::create_dir_all(root.join(BUCKET)).with_context(|| format!("creating {}", root.display()))?;
        let fs = s3s_fs::FileSystem::new(root).map_err(|e| anyhow::anyhow!("serving {}: {e:?}", root.display()))?;
        let mut builder = s3s::service::S3ServiceBuilder::new(fs);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = builder.build();
        let delayed = tower::service_fn(move |request| {
            let service = service.clone();
            async move {
                if !latency.is_zero() {
                    tokio::time::sleep(latency).await;
                }
                tower::ServiceExt::oneshot(service, request).await
            }
        });
        let service = TowerToHyperService::new(delayed);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let http = ConnBuilder::new(TokioExecutor::new());
            loop {
                let Ok((socket, _)) = listener.accept().await else { continue };
                let connection = http.serve_connection(TokioIo::new(socket), service.clone()).into_owned();
                tokio::spawn(connection);
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
