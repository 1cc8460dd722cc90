//! ICMP round: UDP echo transport against in-test echo servers on 127.0.0.1, live ICMP to
//! 127.0.0.1 when a socket can be opened, and the stats arithmetic.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lienthong::probe::icmp::{effective_pacing, icmp_capability, loss_ratio, rtt_stats};
use lienthong::probe::{
    BuildContext, Details, IcmpDetails, IcmpProbe, IcmpSpec, Outcome, Probe, Reason, RoundShape,
};
use tokio::net::UdpSocket;

#[derive(Clone, Copy)]
enum Server {
    Echo,
    /// Drops every second datagram it receives.
    DropEveryOther,
    Delay(Duration),
    Silent,
    /// Sends junk (wrong length, wrong round id, truncated, oversized) before each real echo,
    /// and the echo twice.
    GarbageAround,
}

/// Starts a UDP echo server on 127.0.0.1:0; returns its port and a count of datagrams seen.
async fn echo_server(mode: Server) -> (u16, Arc<AtomicUsize>) {
    let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let port = sock.local_addr().unwrap().port();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        loop {
            let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
                continue;
            };
            let k = counter.fetch_add(1, Ordering::SeqCst);
            let data = buf[..n].to_vec();
            match mode {
                Server::Echo => {
                    let _ = sock.send_to(&data, peer).await;
                }
                Server::DropEveryOther => {
                    if k.is_multiple_of(2) {
                        let _ = sock.send_to(&data, peer).await;
                    }
                }
                Server::Delay(d) => {
                    let sock = sock.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(d).await;
                        let _ = sock.send_to(&data, peer).await;
                    });
                }
                Server::Silent => {}
                Server::GarbageAround => {
                    let mut wrong_id = data.clone();
                    wrong_id[0] ^= 0xff;
                    let mut longer = data.clone();
                    longer.push(0);
                    let mut flipped_pad = data.clone();
                    if let Some(last) = flipped_pad.last_mut() {
                        *last ^= 1;
                    }
                    for junk in [
                        b"hello".to_vec(),
                        wrong_id,
                        data[..data.len() / 2].to_vec(),
                        longer,
                        flipped_pad,
                        vec![0xff; data.len()],
                    ] {
                        let _ = sock.send_to(&junk, peer).await;
                    }
                    let _ = sock.send_to(&data, peer).await;
                    let _ = sock.send_to(&data, peer).await;
                }
            }
        }
    });
    (port, seen)
}

fn probe(host: &str, port: Option<u16>, packets: u32, pacing_ms: u64, max_loss: f64) -> Probe {
    let spec = IcmpSpec {
        host: host.into(),
        packets: None,
        pacing: None,
        max_loss: None,
        udp_echo_port: port,
        reply_timeout: None,
        payload_bytes: 56,
    };
    let ctx = BuildContext {
        round: RoundShape {
            packets,
            pacing: Duration::from_millis(pacing_ms),
            max_loss,
            reply_timeout: Duration::from_secs(5),
        },
    };
    Probe::Icmp(IcmpProbe::build(&spec, &ctx).expect("valid spec"))
}

fn details(o: &Outcome) -> &IcmpDetails {
    match &o.details {
        Details::Icmp(d) => d,
        other => panic!("expected icmp details, got {other:?}"),
    }
}

#[tokio::test]
async fn udp_echo_no_loss() {
    let (port, seen) = echo_server(Server::Echo).await;
    let o = probe("127.0.0.1", Some(port), 5, 20, 0.0)
        .run(Duration::from_secs(2))
        .await;
    assert!(o.success, "{o:?}");
    let d = details(&o);
    assert_eq!((d.sent, d.received, d.rtts.len()), (5, 5, 5));
    assert_eq!(seen.load(Ordering::SeqCst), 5);
    assert_eq!(d.loss_ratio, 0.0);
    assert_eq!(d.socket, "udp_echo");
    let (min, avg, max) = (d.rtt_min.unwrap(), d.rtt_avg.unwrap(), d.rtt_max.unwrap());
    assert!(min > 0.0 && min <= avg && avg <= max && max < 1.0, "{d:?}");
    assert!(d.jitter.unwrap() >= 0.0);
    assert!(d.resolve.is_some() && d.setup.is_some());
    // Paced: 4 gaps of 20 ms at least, and it ends as soon as the last reply is in.
    assert!(o.duration >= Duration::from_millis(80), "{:?}", o.duration);
    assert!(o.duration < Duration::from_secs(1), "{:?}", o.duration);
}

#[tokio::test]
async fn udp_echo_half_loss() {
    let (port, _) = echo_server(Server::DropEveryOther).await;
    let o = probe("127.0.0.1", Some(port), 4, 10, 0.4)
        .run(Duration::from_millis(600))
        .await;
    assert_eq!(o.reason(), Some(Reason::PacketLoss), "{o:?}");
    let d = details(&o);
    assert_eq!((d.sent, d.received), (4, 2));
    assert_eq!(d.loss_ratio, 0.5);
    let msg = &o.failure.as_ref().unwrap().message;
    assert!(
        msg.contains("lost 2 of 4") && msg.contains("50.0%"),
        "{msg}"
    );

    // The same loss is within a 0.5 limit (fail only when loss > max_loss).
    let (port, _) = echo_server(Server::DropEveryOther).await;
    let o = probe("127.0.0.1", Some(port), 4, 10, 0.5)
        .run(Duration::from_millis(600))
        .await;
    assert!(o.success, "{o:?}");
    assert_eq!(details(&o).received, 2);
}

#[tokio::test]
async fn udp_echo_delay_shows_in_rtt() {
    let (port, _) = echo_server(Server::Delay(Duration::from_millis(50))).await;
    let o = probe("127.0.0.1", Some(port), 3, 10, 0.0)
        .run(Duration::from_secs(2))
        .await;
    assert!(o.success, "{o:?}");
    let d = details(&o);
    assert_eq!(d.received, 3);
    assert!(d.rtt_min.unwrap() >= 0.050, "{d:?}");
    assert!(d.rtt_max.unwrap() < 0.5, "{d:?}");
}

#[tokio::test]
async fn udp_echo_silent_server_is_total_loss_within_timeout() {
    let (port, seen) = echo_server(Server::Silent).await;
    let timeout = Duration::from_millis(400);
    let started = Instant::now();
    let o = probe("127.0.0.1", Some(port), 3, 50, 1.0)
        .run(timeout)
        .await;
    let elapsed = started.elapsed();
    assert_eq!(o.reason(), Some(Reason::PacketLoss), "{o:?}");
    assert!(o.failure.as_ref().unwrap().message.contains("100% loss"));
    let d = details(&o);
    assert_eq!((d.sent, d.received), (3, 0));
    assert_eq!(d.loss_ratio, 1.0);
    assert!(d.rtt_min.is_none() && d.jitter.is_none());
    assert_eq!(seen.load(Ordering::SeqCst), 3);
    assert!(elapsed >= timeout - Duration::from_millis(5), "{elapsed:?}");
    // Slack for timers on a loaded CI box; a probe that overran its timeout would show more.
    assert!(
        elapsed < timeout + Duration::from_millis(500),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn dead_link_round_ends_after_the_reply_wait_not_the_timeout() {
    let (port, _) = echo_server(Server::Silent).await;
    let spec = IcmpSpec {
        host: "127.0.0.1".into(),
        packets: Some(4),
        pacing: Some(Duration::from_millis(50)),
        max_loss: Some(0.5),
        udp_echo_port: Some(port),
        reply_timeout: Some(Duration::from_millis(300)),
        payload_bytes: 56,
    };
    let p = Probe::Icmp(IcmpProbe::build(&spec, &BuildContext::default()).unwrap());
    let started = Instant::now();
    let o = p.run(Duration::from_secs(5)).await;
    let elapsed = started.elapsed();
    assert_eq!(o.reason(), Some(Reason::PacketLoss), "{o:?}");
    // 3 gaps of 50 ms + 300 ms wait for the last request: far below the 5 s timeout.
    assert!(elapsed >= Duration::from_millis(440), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(1200), "{elapsed:?}");
}

#[tokio::test]
async fn udp_echo_ignores_garbage_and_duplicates() {
    let (port, _) = echo_server(Server::GarbageAround).await;
    let o = probe("127.0.0.1", Some(port), 4, 10, 0.0)
        .run(Duration::from_secs(2))
        .await;
    assert!(o.success, "{o:?}");
    let d = details(&o);
    assert_eq!((d.sent, d.received, d.rtts.len()), (4, 4, 4));
}

#[tokio::test]
async fn udp_echo_closed_port_is_refused() {
    // The discard port, privileged and bound by nobody here: a freed ephemeral port could be
    // taken by a parallel test's socket (or the probe's own) and answer or stay silent.
    let port = 9;
    let o = probe("127.0.0.1", Some(port), 3, 20, 0.5)
        .run(Duration::from_millis(500))
        .await;
    assert_eq!(o.reason(), Some(Reason::ConnectRefused), "{o:?}");
    assert_eq!(details(&o).received, 0);
}

#[tokio::test]
async fn pacing_shrinks_to_fit_the_timeout() {
    let (port, seen) = echo_server(Server::Silent).await;
    // 10 × 200 ms would not fit in 500 ms: every packet must still leave, within the timeout.
    let o = probe("127.0.0.1", Some(port), 10, 200, 0.5)
        .run(Duration::from_millis(500))
        .await;
    assert_eq!(details(&o).sent, 10);
    assert_eq!(seen.load(Ordering::SeqCst), 10);
    assert!(o.duration < Duration::from_millis(800), "{:?}", o.duration);
}

#[test]
fn build_rejects_bad_shapes() {
    let spec = |packets, max_loss, payload_bytes| IcmpSpec {
        host: "127.0.0.1".into(),
        packets: Some(packets),
        pacing: None,
        max_loss: Some(max_loss),
        reply_timeout: None,
        udp_echo_port: None,
        payload_bytes,
    };
    let ctx = BuildContext::default();
    assert!(IcmpProbe::build(&spec(0, 0.5, 56), &ctx).is_err());
    assert!(IcmpProbe::build(&spec(5, 1.5, 56), &ctx).is_err());
    assert!(IcmpProbe::build(&spec(5, f64::NAN, 56), &ctx).is_err());
    assert!(IcmpProbe::build(&spec(5, 0.5, 9000), &ctx).is_err());
    let p = IcmpProbe::build(&spec(7, 0.2, 56), &ctx).unwrap();
    assert_eq!((p.shape().packets, p.shape().max_loss), (7, 0.2));
    assert_eq!(p.shape().pacing, RoundShape::default().pacing);
}

#[test]
fn stats_arithmetic() {
    assert_eq!(rtt_stats(&[]), None);
    let one = rtt_stats(&[0.010]).unwrap();
    assert_eq!(
        (one.min, one.avg, one.max, one.stddev),
        (0.010, 0.010, 0.010, 0.0)
    );
    let s = rtt_stats(&[0.004, 0.001, 0.003, 0.002]).unwrap();
    assert_eq!((s.min, s.max), (0.001, 0.004));
    assert!((s.avg - 0.0025).abs() < 1e-12);
    // Population std dev: sqrt(((1.5² + 0.5²) × 2) / 4) ms = sqrt(1.25) ms.
    assert!((s.stddev - 1.25f64.sqrt() / 1000.0).abs() < 1e-12, "{s:?}");
    let s = rtt_stats(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap();
    assert!((s.stddev - 2.0).abs() < 1e-12 && (s.avg - 5.0).abs() < 1e-12);

    assert_eq!(loss_ratio(5, 5), 0.0);
    assert!((loss_ratio(5, 3) - 0.4).abs() < 1e-12);
    assert_eq!(loss_ratio(4, 0), 1.0);
    assert_eq!(loss_ratio(0, 0), 1.0);

    let ms = Duration::from_millis;
    assert_eq!(effective_pacing(5, ms(200), ms(2000)), ms(200));
    assert_eq!(effective_pacing(10, ms(200), ms(500)), ms(50));
    assert_eq!(effective_pacing(1, ms(900), ms(500)), ms(900));
}

/// Live ICMP to 127.0.0.1, only where this process may open an ICMP socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_icmp_loopback() {
    let cap = icmp_capability();
    let Some(socket) = cap.socket() else {
        // No ICMP here: the round must say so precisely instead of reporting loss.
        let o = probe("127.0.0.1", None, 2, 10, 0.0)
            .run(Duration::from_secs(1))
            .await;
        assert_eq!(o.reason(), Some(Reason::Permission), "{o:?}");
        let msg = &o.failure.as_ref().unwrap().message;
        assert!(
            msg.contains("CAP_NET_RAW") && msg.contains("ping_group_range"),
            "{msg}"
        );
        eprintln!("SKIP live_icmp_loopback (live part): {}", cap.summary());
        return;
    };
    // Concurrent rounds to the same host share one socket and must not steal each other's replies.
    let probes: Vec<Probe> = (0..3)
        .map(|_| probe("127.0.0.1", None, 4, 10, 0.0))
        .collect();
    let outcomes =
        futures::future::join_all(probes.iter().map(|p| p.run(Duration::from_secs(2)))).await;
    for o in &outcomes {
        assert!(o.success, "{o:?}");
        let d = details(o);
        assert_eq!((d.sent, d.received), (4, 4), "{d:?}");
        assert_eq!(d.socket, socket);
        assert!(d.rtt_max.unwrap() < 0.5);
    }
}

/// A second runtime gets its own shared client (surge-ping's receive task lives on a runtime).
#[tokio::test]
async fn live_icmp_loopback_second_runtime() {
    if icmp_capability().socket().is_none() {
        eprintln!("SKIP live_icmp_loopback_second_runtime: no ICMP socket");
        return;
    }
    let o = probe("127.0.0.1", None, 2, 10, 0.0)
        .run(Duration::from_secs(2))
        .await;
    assert!(o.success, "{o:?}");
    assert_eq!(details(&o).received, 2);
}
