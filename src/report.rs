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
        Details::Transaction(d) => {
            for (i, s) in d.steps.iter().enumerate() {
                let verdict = match (s.ran, s.success) {
                    (false, _) if s.reason.is_some() => "NOT STARTED",
                    (false, _) => "SKIPPED",
                    (true, true) => "OK",
                    (true, false) => "FAILED",
                };
                let cleanup = if s.cleanup { " (cleanup)" } else { "" };
                let _ = writeln!(
                    out,
                    "  step {} {}{cleanup}: {} {} — {verdict} in {:.1} ms",
                    i + 1,
                    s.name,
                    s.method,
                    s.url,
                    s.duration.as_secs_f64() * 1000.0
                );
                if !s.ran {
                    if let Some(e) = &s.error {
                        let _ = writeln!(out, "    {e}");
                    }
                    continue;
                }
                let _ = writeln!(
                    out,
                    "    status: {}  body: {} bytes  extracted: [{}]",
                    s.status
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "-".into()),
                    s.body_bytes,
                    s.extracted.join(", ")
                );
                phases(&mut out, &s.phases);
                if let (Some(r), Some(e)) = (s.reason, &s.error) {
                    let _ = writeln!(out, "    failed: {r}: {e}");
                }
            }
            expiry(&mut out, d.cert_earliest_expiry);
        }
        Details::None => {}
    }
    out
}

/// Levenshtein distance, in characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The candidates closest to `input` (edit distance at most a third of its length, at least
/// 2; or containing it), best first, at most 3.
pub fn suggestions<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let limit = (input.chars().count() / 3).max(2);
    let mut scored: Vec<(usize, &str)> = candidates
        .into_iter()
        .filter_map(|c| {
            let d = distance(input, c);
            (d <= limit || (input.len() >= 3 && c.contains(input))).then_some((d, c))
        })
        .collect();
    scored.sort();
    scored.dedup();
    scored
        .into_iter()
        .take(3)
        .map(|(_, c)| c.to_string())
        .collect()
}

/// " (did you mean `a` or `b`?)", or nothing.
pub fn did_you_mean(candidates: &[String]) -> String {
    match candidates {
        [] => String::new(),
        [one] => format!(" (did you mean `{one}`?)"),
        many => format!(
            " (did you mean {}?)",
            many.iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(" or ")
        ),
    }
}

/// Why `target` / `check` names nothing in `inv`, with the closest names.
pub fn unknown_check(inv: &crate::config::Inventory, target: &str, check: Option<&str>) -> String {
    let owners: Vec<&str> = inv
        .sites
        .iter()
        .map(|s| s.slug.as_str())
        .chain(inv.services.iter().map(|s| s.slug.as_str()))
        .collect();
    if !owners.contains(&target) {
        let s = suggestions(target, owners);
        return format!("no site or shared service `{target}`{}", did_you_mean(&s));
    }
    let names: Vec<&str> = inv
        .checks
        .iter()
        .filter(|c| c.id.owner() == target)
        .map(|c| &*c.id.name)
        .collect();
    let check = check.unwrap_or("");
    let s = suggestions(check, names.iter().copied());
    format!(
        "`{target}` has no check `{check}`{}; its checks: {}",
        did_you_mean(&s),
        names.join(", ")
    )
}

#[cfg(test)]
mod suggest_tests {
    use super::*;

    #[test]
    fn close_names_are_suggested() {
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("", "ab"), 2);
        let names = ["phuong-ben-thanh", "phuong-sai-gon", "xa-thanh-an"];
        assert_eq!(
            suggestions("phuong-ben-tanh", names),
            vec!["phuong-ben-thanh"]
        );
        assert_eq!(suggestions("ben-thanh", names), vec!["phuong-ben-thanh"]);
        assert!(suggestions("zzz", names).is_empty());
        assert_eq!(
            did_you_mean(&["a".into(), "b".into()]),
            " (did you mean `a` or `b`?)"
        );
    }
}
