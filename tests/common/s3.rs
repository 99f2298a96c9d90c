//! An S3-protocol server (s3s-fs) on 127.0.0.1, serving a local directory (each subdirectory
//! is a bucket), that a test can stop and start again on the same address (an outage).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;

pub const ACCESS_KEY: &str = "test-access-key";
pub const SECRET_KEY: &str = "test-secret-key";

pub struct S3Server {
    pub addr: SocketAddr,
    root: PathBuf,
    running: Option<(tokio::sync::oneshot::Sender<()>, std::thread::JoinHandle<()>)>,
}

impl S3Server {
    /// Starts serving `root` on an ephemeral port, with an empty bucket `fimlake-bucket` in it.
    pub fn start_with_bucket(root: &Path) -> S3Server {
        std::fs::create_dir(root.join("fimlake-bucket")).unwrap();
        S3Server::start(root)
    }

    /// Starts serving `root` on an ephemeral port.
    pub fn start(root: &Path) -> S3Server {
        let mut server = S3Server { addr: "127.0.0.1:0".parse().unwrap(), root: root.to_path_buf(), running: None };
        server.resume();
        server
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The `fimlake serve` environment that puts its tables under `s3://BUCKET/PREFIX` here.
    pub fn server_env(&self, table_url: &str) -> Vec<(String, String)> {
        [
            ("FIMLAKE_STORAGE_TABLE_URL", table_url),
            ("AWS_ENDPOINT", self.endpoint().as_str()),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
            ("AWS_REGION", "us-east-1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// The object store options that reach the same bucket from a storage configuration.
    pub fn object_store_options(&self) -> Vec<(String, String)> {
        [
            ("aws_endpoint", self.endpoint().as_str()),
            ("aws_allow_http", "true"),
            ("aws_access_key_id", ACCESS_KEY),
            ("aws_secret_access_key", SECRET_KEY),
            ("aws_region", "us-east-1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// A storage configuration reading the tables at `table_url` here, with the WAL of `data_dir`.
    pub fn storage_config(&self, table_url: &str, data_dir: &Path) -> fimlake_storage::StorageConfig {
        let mut cfg = fimlake_storage::StorageConfig {
            data_dir: data_dir.to_path_buf(),
            table_url: Some(table_url.into()),
            ..Default::default()
        };
        cfg.object_store_options.extend(self.object_store_options());
        cfg
    }

    /// Stops the server: its port refuses connections and open connections are dropped.
    pub fn pause(&mut self) {
        if let Some((stop, thread)) = self.running.take() {
            let _ = stop.send(());
            thread.join().unwrap();
        }
    }

    /// Starts serving again, on the same address once it has one.
    pub fn resume(&mut self) {
        assert!(self.running.is_none(), "the S3 server is already running");
        let (root, wanted) = (self.root.clone(), self.addr);
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async move {
                let fs = s3s_fs::FileSystem::new(&root).unwrap();
                let mut b = s3s::service::S3ServiceBuilder::new(fs);
                b.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
                let service = b.build();
                let listener = tokio::net::TcpListener::bind(wanted).await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let http = ConnBuilder::new(TokioExecutor::new());
                let serve = async {
                    loop {
                        let Ok((socket, _)) = listener.accept().await else { continue };
                        let conn = http.serve_connection(TokioIo::new(socket), service.clone()).into_owned();
                        tokio::spawn(async move {
                            let _ = conn.await;
                        });
                    }
                };
                tokio::select! {
                    _ = serve => {}
                    _ = stop_rx => {}
                }
            });
            // Dropping the runtime ends every connection task.
            rt.shutdown_background();
        });
        self.addr = addr_rx.recv().unwrap();
        self.running = Some((stop_tx, thread));
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.pause();
    }
}
