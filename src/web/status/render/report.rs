//! The readiness report as an HTML document (`/readiness`, `lienthong readiness --format html`).

use super::*;

/// The readiness report as a standalone HTML document (also `lienthong readiness --format html`).
pub(in crate::web::status) fn team_stat(
    st: &crate::incidents::figures::Stat,
    lang: Lang,
) -> String {
    match (st.median_seconds, st.p90_seconds, st.max_seconds) {
        (Some(a), Some(b), Some(c)) => format!(
            "{} / {} / {}",
            readiness::duration_text(a, lang),
            readiness::duration_text(b, lang),
            readiness::duration_text(c, lang)
        ),
        _ => "–".into(),
    }
}

pub fn report_html(r: &Report, lang: Lang) -> Markup {
    let c = &r.city;
    let generated = crate::localtime::parse_rfc3339(&r.generated_at).unwrap_or(0);
    let alt = format!(
        "/readiness?from={}&to={}{}",
        r.from,
        r.to,
        lang.pick("&lang=en", "")
    );
    let cls = if c.all_ready {
        "s-up"
    } else if c.not_ready > 0 {
        "s-down"
    } else {
        "s-unknown"
    };
    let body = html! {
        main {
            section class={"panel ready " (cls)} #readiness data-total=(c.total) data-ready=(c.ready) {
                div {
                    div.headline { (lang.pick(&c.headline, &c.headline_en)) }
                    div.small.muted { (r.from_local) " → " (r.to_local) " " (lang.pick("(giờ Việt Nam)", "(Viet Nam time)")) }
                }
                div.facts {
                    span { (verdict_badge(Verdict::NotReady, lang)) " " b { (c.not_ready) } }
                    span { (verdict_badge(Verdict::InsufficientData, lang)) " " b { (c.insufficient_data) } }
                    span { (lang.pick("Dịch vụ dùng chung đạt: ", "Shared services ready: ")) b { (c.services_ready) "/" (c.services_total) } }
                    span { (lang.pick("Lập lúc ", "Generated ")) (r.generated_at_local) }
                }
            }
            @for p in &r.prober_incidents {
                div.panel.s-degraded { (icon("degraded")) " " b { (lang.pick("Hệ thống giám sát bị gián đoạn", "Monitoring impaired")) } " #" (p.id) ": " (lang.pick(&p.title, &p.title_en)) }
            }
            section.panel {
                h2 { (lang.pick("Tiêu chí", "Criteria")) }
                ul { @for l in readiness::criteria_lines(r, lang) { li { (l) } } }
                @if r.start_rounded { p.small.muted { (lang.pick("Đầu khoảng thời gian cũ hơn dữ liệu theo phút còn lưu: giờ đầu tiên được tính trọn giờ.", "The window starts before the per-minute data kept: its first hour is counted whole.")) } }
            }
            @for (v, vi, en) in [(Verdict::NotReady, "Chưa sẵn sàng", "Not ready"), (Verdict::InsufficientData, "Không đủ dữ liệu", "Insufficient data")] {
                @let list: Vec<&readiness::SiteResult> = r.sites.iter().filter(|s| s.verdict == v).collect();
                section.panel {
                    h2 { (lang.pick(vi, en)) " (" (list.len()) ")" }
                    @if list.is_empty() { p.muted { (lang.pick("Không có.", "None.")) } } @else {
                        table {
                            thead { tr { th { (lang.pick("Mã", "Code")) } th { (lang.pick("Xã, phường, đặc khu", "Site")) } th { (lang.pick("Quận, huyện cũ", "Former district")) } th { (lang.pick("Lý do", "Reasons")) } } }
                            tbody { @for s in list { tr {
                                td { (s.code) }
                                td { a href={ "/sites/" (s.slug) (lang_suffix(lang, true)) } { (s.name) } @if s.island { span.isl { (lang.pick("Đảo", "Island")) } } }
                                td { (s.former_district) }
                                td { @for f in &s.reasons { div { (f.text(lang)) } } }
                            } } }
                        }
                    }
                }
            }
            section.panel {
                h2 { (lang.pick("Dịch vụ dùng chung", "Shared services")) }
                table {
                    thead { tr { th { (lang.pick("Dịch vụ", "Service")) } th { (lang.pick("Kết quả", "Verdict")) } th.n { (lang.pick("Khả dụng thấp nhất", "Lowest availability")) } th { (lang.pick("Lý do", "Reasons")) } } }
                    tbody { @for s in &r.services { tr {
                        td { (match lang { Lang::Vi => s.name.as_str(), Lang::En => s.name_en.as_deref().unwrap_or(&s.name) }) }
                        td { (verdict_badge(s.verdict, lang)) }
                        td.n { (opt(readiness::worst_availability(&s.checks).map(|a| pct(a, lang)))) }
                        td { @for f in &s.reasons { div { (f.text(lang)) } } }
                    } } }
                }
            }
            @for (title, groups) in [(lang.pick("Theo tỉnh, thành phố cũ", "By former province"), &r.provinces), (lang.pick("Theo tổ chuyên trách", "By team"), &r.teams)] {
                @if !groups.is_empty() {
                    section.panel {
                        h2 { (title) }
                        table {
                            @let with_services = groups.iter().any(|g| g.services_total > 0);
                            thead { tr {
                                th { (lang.pick("Nhóm", "Group")) } th.n { (lang.pick("Xã, phường", "Sites")) }
                                th.n { (Verdict::Ready.title(lang)) } th.n { (Verdict::NotReady.title(lang)) } th.n { (Verdict::InsufficientData.title(lang)) }
                                @if with_services { th.n { (lang.pick("Dịch vụ dùng chung sẵn sàng", "Shared services ready")) } }
                            } }
                            tbody { @for g in groups.iter() { tr {
                                td { (lang.pick(&g.name, &g.name_en)) } td.n { (g.total) } td.n { (g.ready) } td.n { (g.not_ready) } td.n { (g.insufficient_data) }
                                @if with_services { td.n { @if g.services_total > 0 { (g.services_ready) "/" (g.services_total) } @else { "–" } } }
                            } } }
                        }
                    }
                }
            }
            @if let Some(f) = &r.team_figures {
                section.panel #team-figures {
                    h2 { (lang.pick("Tổ chuyên trách: thời gian tiếp nhận và khắc phục sự cố", "Teams: time to acknowledge and to resolve")) }
                    p { (lang.pick("Trung vị / p90 / lâu nhất, tính từ lúc sự cố bắt đầu; sự cố bắt đầu trong khoảng thời gian báo cáo.", "Median / p90 / max from the incident's start; incidents started in the window.")) }
                    table {
                        thead { tr {
                            th { (lang.pick("Tổ", "Team")) } th { (lang.pick("Mức độ", "Severity")) } th.n { (lang.pick("Sự cố", "Incidents")) }
                            th { (lang.pick("Thời gian tiếp nhận", "Time to acknowledge")) } th { (lang.pick("Thời gian khắc phục", "Time to resolve")) }
                            th.n { (lang.pick("Đang mở", "Open")) } th.n { (lang.pick("Mở lâu nhất", "Oldest open")) }
                        } }
                        tbody { @for tf in f.teams.iter().chain(std::iter::once(&f.city)) {
                            @for (i, sf) in tf.severities.iter().enumerate() {
                                @if i == 0 || sf.incidents > 0 {
                                    tr data-team=(tf.team) data-severity=(sf.severity) {
                                        td { @if i == 0 { (readiness::team_label(tf, lang)) } }
                                        td { (match sf.severity.as_str() { "critical" => lang.pick("Nghiêm trọng", "Critical"), "warning" => lang.pick("Cảnh báo", "Warning"), _ => lang.pick("Tất cả", "All") }) }
                                        td.n { (sf.incidents) }
                                        td { (team_stat(&sf.time_to_acknowledge, lang)) }
                                        td { (team_stat(&sf.time_to_resolve, lang)) }
                                        td.n { @if i == 0 { (tf.open.count) } }
                                        td.n { @if i == 0 { (opt(tf.open.oldest_seconds.map(|s| readiness::duration_text(s, lang)))) } }
                                    }
                                }
                            }
                        } }
                    }
                }
            }
            section.panel {
                h2 { (lang.pick("Chi tiết từng xã, phường, đặc khu", "Every site")) " (" (r.sites.len()) ")" }
                table {
                    thead { tr { th { (lang.pick("Mã", "Code")) } th { (lang.pick("Tên", "Name")) } th { (lang.pick("Kết quả", "Verdict")) } th.n { (lang.pick("Khả dụng thấp nhất", "Lowest availability")) } th.n { (lang.pick("RTT đường truyền", "Link RTT")) } th.n { (lang.pick("Mất gói", "Loss")) } th { (lang.pick("Phần mềm dùng chung từ phường", "Shared services from the ward")) } } }
                    tbody { @for s in &r.sites {
                        @let link = s.checks.iter().find(|c| c.role == "link");
                        tr data-slug=(s.slug) data-verdict=(s.verdict.as_str()) {
                            td { (s.code) } td { (s.name) } td { (verdict_badge(s.verdict, lang)) }
                            td.n { (opt(readiness::worst_availability(&s.checks).map(|a| pct(a, lang)))) }
                            td.n { (opt(link.and_then(|c| c.latency_quantile_ms).map(|v| fmt_ms(v, lang)))) }
                            td.n { (opt(link.and_then(|c| c.loss).map(|v| pct(v, lang)))) }
                            td.ward-services data-verdict=[s.ward_services.verdict.map(|v| v.as_str())] { (s.ward_services.text(lang)) }
                        }
                    } }
                }
            }
        }
    };
    page(
        lang,
        lang.pick("Báo cáo sẵn sàng", "Readiness report"),
        generated,
        &alt,
        body,
    )
}
