//! The whole service in-process on 127.0.0.1:0 with a minimal config (one site, one HTTP check
//! to a closed port), for the reliability suites.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lienthong::config::Config;
use lienthong::service::{self, Handles, Loader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A minimal valid config; `extra` is appended (e.g. a `[server]` or `[[notify]]` section).
pub fn config(db: &Path, extra: &str) -> String {
    format!(
        r#"
[incidents]
database = "{db}"

{extra}

[link_class.mainland]
interval = "2s"
timeout = "1s"
packets = 2
pacing = "50ms"
max_loss = 0.5
degraded_loss = 0.1
degraded_rtt = "100ms"
degraded_jitter = "50ms"
degraded_latency = "1s"

[[template]]
name = "endpoint"
role = "endpoint"
title = "Trung tâm phục vụ hành chính công"
probe.http = {{ url = "{{addr.endpoint}}" }}

[inventory]
sites = [
  {{ code = "1", slug = "phuong-a", name = "Phường A", kind = "phuong", former_province = "tphcm", former_district = "Quận 1", island = false, lat = 10.7, lon = 106.7, addr = {{ endpoint = "http://127.0.0.1:1/" }} }},
]
"#,
        db = db.display()
    )
}

pub struct Running {
    pub base: String,
    pub addr: std::net::SocketAddr,
    pub config: PathBuf,
    pub reload: mpsc::Sender<()>,
    pub shutdown: CancellationToken,
    pub handles: Handles,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Writes `text` to `config` and runs the service on it.
pub async fn start(config: PathBuf, text: &str) -> Running {
    let _ = rustls::crypto::ring::default_provider().install_default();
    std::fs::write(&config, text).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let p = config.clone();
    let loader: Loader = Arc::new(move || Config::load(&p).map(|c| (*c.inventory).clone()));
    let (reload, reload_rx) = mpsc::channel(1);
    let shutdown = CancellationToken::new();
    let handles = Handles::new();
    let task = tokio::spawn(service::run(
        loader,
        listener,
        reload_rx,
        shutdown.clone(),
        handles.clone(),
    ));
    Running {
        base: format!("http://{addr}"),
        addr,
        config,
        reload,
        shutdown,
        handles,
        task,
    }
}

impl Running {
    pub async fn get(&self, path: &str) -> (u16, String) {
        let client = reqwest::Client::new();
        match client
            .get(format!("{}{path}", self.base))
            .timeout(Duration::from_secs(5))
            .send()
            .await
        {
            Ok(r) => {
                let code = r.status().as_u16();
                (code, r.text().await.unwrap_or_default())
            }
            Err(e) => (0, e.to_string()),
        }
    }

    /// Polls `path` until `f` accepts the answer or `limit` passes.
    pub async fn wait_for(
        &self,
        path: &str,
        limit: Duration,
        f: impl Fn(u16, &str) -> bool,
    ) -> (u16, String) {
        let until = Instant::now() + limit;
        loop {
            let (code, body) = self.get(path).await;
            if f(code, &body) || Instant::now() > until {
                return (code, body);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}
