//! Human-readable text of one run, for `lienthong probe` (like blackbox_exporter's debug output).

use std::fmt::Write;
use std::time::Duration;

use crate::config::CheckDef;
use crate::probe::{Details, Outcome, Phases};

fn ms(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.2} ms", d.as_secs_f64() * 1000.0))
        .unwrap_or_else(|| "-".into())
}

fn ms_f(v: Option<f64>) -> String {
    v.map(|v| format!("{:.2} ms", v * 1000.0))
        .unwrap_or_else(|| "-".into())
}

fn phases(out: &mut String, p: &Phases) {
    for (name, v) in [
        ("resolve", p.resolve),
        ("connect", p.connect),
        ("tls", p.tls),
        ("processing", p.processing),
        ("transfer", p.transfer),
    ] {
        let _ = writeln!(out, "    {name:<11} {}", ms(v));
    }
}

fn expiry(out: &mut String, e: Option<i64>) {
    if let Some(e) = e {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs() as i64;
        let days = (e - now) as f64 / 86400.0;
        let _ = writeln!(
            out,
            "  certificate expires in {days:.1} days (earliest in chain)"
        );
    }
}

/// The breakdown printed for one check.
pub fn breakdown(c: &CheckDef, o: &Outcome) -> String {
    let mut out = String::new();
    let verdict = if o.success { "OK" } else { "FAILED" };
    let _ = writeln!(
        out,
        "{} [{}] {} — {verdict} in {:.1} ms",
        c.id,
        c.probe.kind().as_str(),
        c.title,
        o.duration.as_secs_f64() * 1000.0
    );
    if let Some(f) = &o.failure {
        let _ = writeln!(out, "  reason: {}\n  error:  {}", f.reason, f.message);
    }
    match &o.details {
        Details::Http(d) => {
            let _ = writeln!(
                out,
                "  status: {}  body: {} bytes  redirects: {}  tls: {}",
                d.status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "-".into()),
                d.body_bytes,
                d.redirects,
                d.tls
            );
            phases(&mut out, &d.phases);
            expiry(&mut out, d.cert_earliest_expiry);
        }
        Details::Tcp(d) => {
            phases(&mut out, &d.phases);
            expiry(&mut out, d.cert_earliest_expiry);
        }
        Details::Icmp(d) => {
            let _ = writeln!(
                out,
                "  socket: {}  sent: {}  received: {}  loss: {:.1} %",
                d.socket,
                d.sent,
                d.received,
                d.loss_ratio * 100.0
            );
            let _ = writeln!(
                out,
                "  rtt min/avg/max: {} / {} / {}  jitter (stddev): {}",
                ms_f(d.rtt_min),
                ms_f(d.rtt_avg),
                ms_f(d.rtt_max),
                ms_f(d.jitter)
            );
            let rtts: Vec<String> = d
                .rtts
                .iter()
                .map(|r| format!("{:.2}", r * 1000.0))
                .collect();
            let _ = writeln!(out, "  rtts (ms): [{}]", rtts.join(", "));
        }
        Details::Dns(d) => {
            let _ = writeln!(
                out,
                "  rcode: {}  answers: {}  connect: {}  request: {}",
                d.rcode.as_deref().unwrap_or("-"),
                d.answer_rrs,
                ms_f(d.connect),
                ms_f(d.request)
            );
            for a in &d.answers {
                let _ = writeln!(out, "    {a}");
            }
        }
        Details::None => {}
    }
    out
}
