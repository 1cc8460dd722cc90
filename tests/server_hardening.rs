//! The HTTP server's limits against abusive clients, on the real service: idle sockets over the
//! connection cap are cut and `/healthz` still answers a fresh client; a slowloris client is
//! cut at the header-read timeout; an event stream outlives the idle timeout (its keep-alives
//! count as activity).

mod common;

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SERVER: &str = r#"
[server]
max_connections = 8
header_read_timeout = "1s"
idle_timeout = "20s"
"#;

async fn running(dir: &tempfile::TempDir) -> common::svc::Running {
    let db = dir.path().join("lienthong.db");
    let svc = common::svc::start(
        dir.path().join("probes.toml"),
        &common::svc::config(&db, SERVER),
    )
    .await;
    let (code, body) = svc
        .wait_for("/healthz", Duration::from_secs(10), |c, _| c == 200)
        .await;
    assert_eq!(code, 200, "{body}");
    svc
}

/// GET over a fresh connection; the status line, or the error.
async fn raw_get(addr: std::net::SocketAddr, path: &str) -> Result<String, String> {
    let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out).into_owned();
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_over_the_cap_are_cut_and_healthz_still_answers() {
    let dir = tempfile::tempdir().unwrap();
    let svc = running(&dir).await;
    // Three times the cap of sockets that never send a byte.
    let mut idle = Vec::new();
    for _ in 0..24 {
        idle.push(TcpStream::connect(svc.addr).await.unwrap());
    }
    let started = Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(15), raw_get(svc.addr, "/healthz"))
        .await
        .expect("healthz answered a fresh connection in time")
        .expect("healthz");
    assert!(status.contains("200"), "{status}");
    eprintln!(
        "healthz answered after {:?} behind 24 idle sockets (cap 8, header timeout 1 s)",
        started.elapsed()
    );
    // The idle ones were closed by the server, not left open.
    let mut closed = 0;
    for mut s in idle {
        let mut b = [0u8; 1];
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_secs(5), s.read(&mut b)).await {
            closed += 1;
        }
    }
    assert_eq!(closed, 24, "every idle socket is closed by the server");
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_is_cut_at_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let svc = running(&dir).await;
    let mut s = TcpStream::connect(svc.addr).await.unwrap();
    let started = Instant::now();
    let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let mut sent = 0;
    let (mut rd, mut wr) = s.split();
    let mut buf = [0u8; 256];
    // One byte per second until the server closes the connection.
    let cut = loop {
        if sent == head.len() {
            break false;
        }
        if wr.write_all(&head[sent..=sent]).await.is_err() {
            break true;
        }
        sent += 1;
        match tokio::time::timeout(Duration::from_secs(1), rd.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(_)) => break true, // a 408 answer, then close
            Err(_) => {}
        }
    };
    let took = started.elapsed();
    eprintln!("slowloris cut after {took:?} and {sent} bytes");
    assert!(cut, "the server never cut the slow client");
    assert!(sent < 5, "cut after {sent} bytes at one byte per second");
    // A normal client is served meanwhile.
    let status = raw_get(svc.addr, "/healthz").await.unwrap();
    assert!(status.contains("200"), "{status}");
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_stream_outlives_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let svc = running(&dir).await;
    let mut s = TcpStream::connect(svc.addr).await.unwrap();
    s.write_all(
        b"GET /api/v1/incidents/stream HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n",
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    let until = Instant::now() + Duration::from_secs(23);
    let mut buf = [0u8; 1024];
    while Instant::now() < until {
        match tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf)).await {
            Ok(Ok(0)) => panic!(
                "stream closed after {:?}: {}",
                until.elapsed(),
                String::from_utf8_lossy(&got)
            ),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Ok(Err(e)) => panic!("stream error: {e}"),
            Err(_) => {}
        }
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.contains(": keep-alive"),
        "keep-alive comment seen: {text}"
    );
    svc.stop().await;
}

#[test]
fn check_config_rejects_a_bad_listen_address_with_its_location() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lienthong.db");
    for (extra, want) in [
        (
            "[server]\nlisten = \"127.0.0.1:99999\"\n",
            "invalid listen address",
        ),
        ("[server]\nlisten = \"no port\"\n", "invalid listen address"),
        ("[server]\nidle_timeout = \"5s\"\n", "idle_timeout"),
    ] {
        let text = common::svc::config(&db, extra);
        let path = dir.path().join("probes.toml");
        std::fs::write(&path, &text).unwrap();
        let key = extra.lines().nth(1).unwrap().split(' ').next().unwrap();
        let line = text.lines().position(|l| l.starts_with(key)).unwrap() + 1;
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_lienthong"))
            .arg("check-config")
            .arg(&path)
            .output()
            .unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{extra}: accepted\n{all}");
        assert!(all.contains(want), "{extra}: {all}");
        assert!(
            all.contains(&format!("probes.toml:{line}:")),
            "{extra}: no line {line} in {all}"
        );
    }
    // The defaults pass.
    let path = dir.path().join("probes.toml");
    std::fs::write(&path, common::svc::config(&db, "")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lienthong"))
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
