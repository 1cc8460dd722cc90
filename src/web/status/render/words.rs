//! Words of the pages (Vietnamese first, English): statuses, reasons, verdicts, badges and
//! the one-line problem of a check or a site.

use super::*;

pub(in crate::web::status) fn status_label(s: SiteStatus, lang: Lang) -> &'static str {
    match s {
        SiteStatus::Up => lang.pick("Bình thường", "Up"),
        SiteStatus::Degraded => lang.pick("Suy giảm", "Degraded"),
        SiteStatus::Down => lang.pick("Gián đoạn", "Down"),
        SiteStatus::Maintenance => lang.pick("Bảo trì", "Maintenance"),
        SiteStatus::Unknown => lang.pick("Chưa có dữ liệu", "No data yet"),
    }
}

pub(in crate::web::status) fn health_status(h: Health) -> SiteStatus {
    match h {
        Health::Up | Health::Failing => SiteStatus::Up,
        Health::Degraded => SiteStatus::Degraded,
        Health::Down => SiteStatus::Down,
        Health::Unknown => SiteStatus::Unknown,
    }
}

pub(in crate::web::status) fn health_label(h: Health, lang: Lang) -> &'static str {
    match h {
        Health::Up => lang.pick("Bình thường", "Up"),
        Health::Degraded => lang.pick("Suy giảm", "Degraded"),
        Health::Failing => lang.pick("Lỗi, đang xác nhận", "Failing, confirming"),
        Health::Down => lang.pick("Gián đoạn", "Down"),
        Health::Unknown => lang.pick("Chưa có dữ liệu", "No data yet"),
    }
}

pub(crate) fn reason_label(r: &str, lang: Lang) -> &str {
    let (vi, en) = match r {
        "timeout" => ("quá thời gian chờ", "timeout"),
        "dns" => ("lỗi phân giải tên miền", "name resolution failed"),
        "connect_refused" => ("bị từ chối kết nối", "connection refused"),
        "connect" => ("lỗi kết nối", "connection failed"),
        "tls" => ("lỗi TLS / chứng chỉ", "TLS / certificate error"),
        "cert_expired" => ("chứng chỉ đã hết hạn", "certificate expired"),
        "cert_untrusted" => ("chứng chỉ không được tin cậy", "certificate not trusted"),
        "cert_hostname" => (
            "chứng chỉ không đúng tên miền",
            "certificate for another name",
        ),
        "http_status" => ("mã trạng thái HTTP sai", "unexpected HTTP status"),
        "body_mismatch" => ("nội dung trả về sai", "unexpected body"),
        "body_too_large" => ("nội dung quá lớn", "body too large"),
        "protocol" => ("lỗi giao thức", "protocol error"),
        "expect_mismatch" => ("phản hồi không đúng", "unexpected reply"),
        "packet_loss" => ("mất gói", "packet loss"),
        "dns_rcode" => ("DNS trả mã lỗi", "DNS error rcode"),
        "dns_answer" => ("DNS trả sai địa chỉ", "wrong DNS answer"),
        "permission" => ("thiếu quyền mở socket", "no permission for the socket"),
        "json_mismatch" => ("dữ liệu JSON trả về sai", "unexpected JSON field"),
        "header_mismatch" => ("tiêu đề HTTP sai", "unexpected HTTP header"),
        "too_slow" => ("một bước giao dịch quá chậm", "a transaction step too slow"),
        "extract_failed" => (
            "không lấy được dữ liệu cho bước sau",
            "could not extract a value",
        ),
        other => (other, other),
    };
    lang.pick(vi, en)
}

pub(in crate::web::status) fn status_class(s: SiteStatus) -> &'static str {
    match s {
        SiteStatus::Up => "s-up",
        SiteStatus::Degraded => "s-degraded",
        SiteStatus::Down => "s-down",
        SiteStatus::Maintenance => "s-maintenance",
        SiteStatus::Unknown => "s-unknown",
    }
}

pub(in crate::web::status) fn verdict_class(v: Verdict) -> &'static str {
    match v {
        Verdict::Ready => "s-up",
        Verdict::NotReady => "s-down",
        Verdict::InsufficientData => "s-unknown",
    }
}

pub(in crate::web::status) fn verdict_icon(v: Verdict) -> &'static str {
    match v {
        Verdict::Ready => "up",
        Verdict::NotReady => "down",
        Verdict::InsufficientData => "unknown",
    }
}

pub(in crate::web::status) fn severity_label(s: Severity, lang: Lang) -> &'static str {
    match s {
        Severity::Critical => lang.pick("Nghiêm trọng", "Critical"),
        Severity::Warning => lang.pick("Cảnh báo", "Warning"),
    }
}

/// An inline icon from the page's symbol sheet, with an accessible name.
pub(in crate::web::status) fn icon(name: &str) -> Markup {
    PreEscaped(format!(
        "<svg class=\"ic\" aria-hidden=\"true\" focusable=\"false\"><use href=\"#i-{name}\"/></svg>"
    ))
}

pub(in crate::web::status) fn status_badge(s: SiteStatus, lang: Lang) -> Markup {
    html! {
        span class={"badge " (status_class(s))} { (icon(s.as_str())) " " (status_label(s, lang)) }
    }
}

pub(in crate::web::status) fn verdict_badge(v: Verdict, lang: Lang) -> Markup {
    html! {
        span class={"badge " (verdict_class(v))} { (icon(verdict_icon(v))) " " (v.label(lang)) }
    }
}

/// What is wrong with a check now, in a few words: its failure reason, or the threshold its
/// last run is over.
pub(in crate::web::status) fn check_problem(c: &CheckStatus, lang: Lang) -> Option<String> {
    let last = c.last.as_ref()?;
    match c.health {
        Health::Down | Health::Failing => Some(
            last.reason
                .map(|r| reason_label(r, lang).to_string())
                .unwrap_or_else(|| health_label(c.health, lang).to_string()),
        ),
        Health::Degraded => Some(breached(c, lang)),
        _ => None,
    }
}

/// Which degraded threshold the last run is over, with both numbers: "mất gói 18 % > 10 %".
pub(in crate::web::status) fn breached(c: &CheckStatus, lang: Lang) -> String {
    let d = &c.check.degraded;
    let Some(last) = c.last.as_ref() else {
        return health_label(c.health, lang).to_string();
    };
    let ms = |s: f64| fmt_ms(s * 1000.0, lang);
    match &last.details {
        Details::Icmp(i) => {
            let rtt = i.rtt_avg.unwrap_or(0.0);
            let jit = i.jitter.unwrap_or(0.0);
            if !d.rtt.is_zero() && rtt > d.rtt.as_secs_f64() {
                format!("RTT {} > {}", ms(rtt), ms(d.rtt.as_secs_f64()))
            } else if !d.jitter.is_zero() && jit > d.jitter.as_secs_f64() {
                format!("jitter {} > {}", ms(jit), ms(d.jitter.as_secs_f64()))
            } else if i.loss_ratio > d.loss {
                format!(
                    "{} {} > {}",
                    lang.pick("mất gói", "loss"),
                    pct(i.loss_ratio, lang),
                    pct(d.loss, lang)
                )
            } else {
                // Loss is judged over many rounds: this one alone may be under the limit.
                format!(
                    "{} > {}",
                    lang.pick(
                        "mất gói kéo dài qua nhiều vòng",
                        "sustained loss over rounds"
                    ),
                    pct(d.loss, lang)
                )
            }
        }
        _ => format!(
            "{} {} > {}",
            lang.pick("chậm", "slow"),
            ms(last.duration_seconds),
            ms(d.latency.as_secs_f64())
        ),
    }
}

pub(in crate::web::status) fn check_title(c: &CheckDef, lang: Lang) -> String {
    match lang {
        Lang::Vi => c.title.clone(),
        Lang::En => c.title_en.clone().unwrap_or_else(|| english_title(c)),
    }
}

/// An English title for a check that has no `title_en`: what it checks, by role and kind, and
/// which check of its owner it is (the Vietnamese title would repeat the service's name).
pub(in crate::web::status) fn english_title(c: &CheckDef) -> String {
    let what = match (c.role, c.probe.kind()) {
        (CheckRole::Link, _) => "Network link",
        (CheckRole::Endpoint, _) => "Public service centre",
        (CheckRole::Video, _) => "Video conference point",
        (_, ProbeKind::Http) => "HTTP check",
        (_, ProbeKind::Tcp) => "TCP check",
        (_, ProbeKind::Icmp) => "Echo check",
        (_, ProbeKind::Dns) => "DNS check",
        (_, ProbeKind::Transaction) => "Transaction check",
    };
    format!("{what} ({})", c.id.name)
}

/// The worst check of a site that explains its status, as "Đường truyền mạng: mất gói".
pub(in crate::web::status) fn site_problem(checks: &[&CheckStatus], lang: Lang) -> Option<String> {
    let rank = |h: Health| match h {
        Health::Down => 0,
        Health::Failing => 1,
        Health::Degraded => 2,
        _ => 9,
    };
    let worst = checks
        .iter()
        .filter(|c| rank(c.health) < 9)
        .min_by_key(|c| (rank(c.health), c.check.role != CheckRole::Link))?;
    let what = check_problem(worst, lang)?;
    Some(format!("{}: {}", check_title(&worst.check, lang), what))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every probe failure reason has its own Vietnamese words (none falls through to the raw
    /// code, which is what an unknown reason shows).
    #[test]
    fn every_reason_has_a_label() {
        for r in crate::probe::Reason::ALL {
            assert_ne!(reason_label(r.as_str(), Lang::Vi), r.as_str(), "{r:?}");
        }
    }
}
