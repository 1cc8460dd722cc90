//! The incident API's latency over a store, shared by the incidents and store benches: the real
//! router on 127.0.0.1:0, 200 GETs of each path, p50/p99 per path and overall.

use std::sync::Arc;
use std::time::Instant;

use lienthong::incidents::Store;

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Serves the API over `store` and times `paths` (each relative to the server's base URL).
pub fn measure(store: Arc<Store>, paths: &[String]) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let app = lienthong::web::router(lienthong::web::AppState {
            metrics: Arc::new(lienthong::metrics::Metrics::new()),
            state: Arc::new(lienthong::state::LiveState::default()),
            store: store.clone(),
            events: tokio::sync::broadcast::channel(16).0,
            api_token: None,
            maintenance_changed: Arc::new(tokio::sync::Notify::new()),
            pages: Default::default(),
            actions: Default::default(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let mut all = Vec::new();
        for p in paths {
            let mut lat = Vec::new();
            for _ in 0..200 {
                let t = Instant::now();
                let r = client.get(format!("{base}{p}")).send().await.unwrap();
                assert!(r.status().is_success(), "{p}: {}", r.status());
                let _ = r.bytes().await.unwrap();
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            lat.sort_by(f64::total_cmp);
            println!(
                "  {:<52} p50 {:>6.2} ms  p99 {:>6.2} ms",
                p,
                percentile(&lat, 0.5),
                percentile(&lat, 0.99)
            );
            all.extend(lat);
        }
        all.sort_by(f64::total_cmp);
        println!(
            "  all {} requests: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            all.len(),
            percentile(&all, 0.5),
            percentile(&all, 0.99),
            percentile(&all, 1.0)
        );
    });
}
