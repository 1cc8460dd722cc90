//! `promtool check metrics` on the full /metrics of the real demo (the `lienthong` binary with
//! its simulated sites on 127.0.0.0/8): ICMP/UDP-echo rounds, HTTP, TCP and DNS checks have all
//! recorded, so every per-check family is linted, not only those of one kind.
//!
//! Needs promtool (Debian package `prometheus`, installed by .ci/run): without it the test
//! skips with a message, except under CI=true, where it fails.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::demo::Demo;

const SCENARIO: &str = r#"
cycle = "10m"
udp_echo_port = 17307
[[fault]]
at = "0s"
duration = "5m"
kind = "http_status"
status = 503
service = "thu-tuc-hanh-chinh"
"#;

fn promtool() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("promtool"))
        .find(|p| p.is_file())
}

#[test]
fn demo_exposition_with_every_probe_kind_passes_promtool() {
    let Some(promtool) = promtool() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "promtool is missing in CI (apt-get install prometheus)"
        );
        eprintln!("SKIPPED: promtool not installed (apt-get install -y --no-install-recommends prometheus)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let demo = Demo::start(dir.path(), SCENARIO);

    // Every configured check has run at least once (first runs are staggered over ≤ 20 s).
    let text = demo
        .wait_for(Duration::from_secs(60), |d| {
            let text = d.get("/metrics")?;
            let configured = text.matches("\nlienthong_check_info{").count();
            let ran = text.matches("\nprobe_success{").count();
            (configured > 0 && ran == configured).then_some(text)
        })
        .expect("every check recorded within 60 s");
    for needle in [
        r#"kind="icmp""#,
        r#"kind="http""#,
        r#"kind="tcp""#,
        r#"kind="dns""#,
        "\nlienthong_icmp_rtt_seconds_bucket{",
        "\nprobe_icmp_packets_sent{",
        "\nprobe_icmp_packets_received{",
        "\nprobe_http_duration_seconds{",
        "\nprobe_dns_answer_rrs{",
        "\nlienthong_probe_failures_total{",
        "\nlienthong_probe_duration_seconds_bucket{",
    ] {
        assert!(text.contains(needle), "no {needle} in /metrics");
    }
    assert!(
        !text.contains("\nprobe_icmp_packets_sent_count")
            && !text.contains("\nprobe_icmp_packets_received_count"),
        "the old names are gone"
    );

    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool check metrics exited {:?} on {} lines:\n{report}",
        out.status.code(),
        text.lines().count()
    );
}
