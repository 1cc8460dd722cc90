//! Rendering a readiness report for people: numbers in words, Markdown and CSV (JSON is its
//! serde form, HTML is in `web::status`).

use std::fmt::Write as _;

use super::*;

/// Percent for people: truncated (never rounded up to 100 %), Vietnamese decimal comma.
pub fn pct(v: f64, lang: Lang) -> String {
    // (The epsilon keeps 0.99 at 99 %, not 98.99 %, through binary rounding.)
    let t = (v * 10_000.0 + 1e-6).floor() / 100.0;
    let s = if t >= 100.0 {
        "100".to_string()
    } else {
        let s = format!("{t:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    };
    match lang {
        Lang::Vi => format!("{} %", s.replace('.', ",")),
        Lang::En => format!("{s}%"),
    }
}

/// A latency for people: "3,2 ms", "45 ms", "1,25 s".
pub fn ms(v: f64, lang: Lang) -> String {
    let s = if v < 10.0 {
        format!("{v:.1} ms")
    } else if v < 1000.0 {
        format!("{v:.0} ms")
    } else {
        let s = format!("{:.2}", v / 1000.0);
        format!("{} s", s.trim_end_matches('0').trim_end_matches('.'))
    };
    match lang {
        Lang::Vi => s.replace('.', ","),
        Lang::En => s,
    }
}

/// Markdown cell: no pipes or line breaks.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

fn opt_pct(v: Option<f64>, lang: Lang) -> String {
    v.map_or_else(|| "–".into(), |v| pct(v, lang))
}

fn opt_ms(v: Option<f64>, lang: Lang) -> String {
    v.map_or_else(|| "–".into(), |v| ms(v, lang))
}

/// The criteria in words.
pub fn criteria_lines(r: &Report, lang: Lang) -> Vec<String> {
    let c = &r.criteria;
    let targets = c
        .availability
        .iter()
        .map(|(k, v)| {
            let name = match lang {
                Lang::Vi => c.class_names.get(k).unwrap_or(k),
                Lang::En => k,
            };
            format!("{name} {}", pct(*v, lang))
        })
        .collect::<Vec<_>>()
        .join(", ");
    let q = format!("p{}", (c.latency_quantile * 100.0).round());
    match lang {
        Lang::Vi => vec![
            format!("Khả dụng của từng kiểm tra, không tính thời gian bảo trì, đạt mục tiêu theo loại đường truyền: {targets}."),
            format!("{q} độ trễ (RTT của đường truyền, thời gian phản hồi của dịch vụ) không vượt ngưỡng của loại đường truyền; tỷ lệ mất gói không vượt ngưỡng."),
            "Không có sự cố nghiêm trọng đang mở vào cuối khoảng thời gian.".into(),
            "Nơi có máy đo tại phường: các phần mềm dùng chung truy cập được từ phường — khả dụng nhìn từ phường đạt mục tiêu của loại đường truyền của đơn vị; nơi không có máy đo: không áp dụng.".into(),
            format!("Đủ dữ liệu: ít nhất {} phút và {} số phút dự kiến ngoài bảo trì; nếu không: \"không đủ dữ liệu\".", c.min_observed_minutes, pct(c.min_coverage, lang)),
        ],
        Lang::En => vec![
            format!("Availability of every check, maintenance excluded, reaches the target of its link class: {targets}."),
            format!("{q} latency (link RTT, service response time) within the class limit; packet loss within the class limit."),
            "No critical incident open at the end of the window.".into(),
            "Where a ward agent runs: the shared services are reachable from the ward — their availability as seen from there reaches the site's link-class target; elsewhere: n/a.".into(),
            format!("Enough data: at least {} minutes and {} of the expected minutes outside maintenance; otherwise \"insufficient data\".", c.min_observed_minutes, pct(c.min_coverage, lang)),
        ],
    }
}

/// The report as Markdown, for people.
pub fn markdown(r: &Report, lang: Lang) -> String {
    let t = |vi: &'static str, en: &'static str| lang.pick(vi, en);
    let mut o = String::new();
    let c = &r.city;
    let _ = writeln!(
        o,
        "# {}\n",
        match lang {
            Lang::Vi => format!(
                "Báo cáo sẵn sàng — {} xã, phường, đặc khu TP. Hồ Chí Minh",
                c.total
            ),
            Lang::En => format!(
                "Readiness report — the {} communes, wards and special zone of Ho Chi Minh City",
                c.total
            ),
        }
    );
    let _ = writeln!(
        o,
        "{}: **{} → {}** ({})  ",
        t("Khoảng thời gian", "Window"),
        r.from_local,
        r.to_local,
        t("giờ Việt Nam, Asia/Ho_Chi_Minh", "Asia/Ho_Chi_Minh time")
    );
    let _ = writeln!(
        o,
        "{}: {}\n",
        t("Lập lúc", "Generated"),
        r.generated_at_local
    );
    if r.start_rounded {
        let _ = writeln!(
            o,
            "_{}_\n",
            t(
                "Đầu khoảng thời gian cũ hơn dữ liệu theo phút còn lưu: giờ đầu tiên được tính trọn giờ.",
                "The window starts before the per-minute data kept: its first hour is counted whole."
            )
        );
    }
    let _ = writeln!(o, "## {}\n", t("Tổng hợp", "Summary"));
    let _ = writeln!(
        o,
        "**{}** · {} {} · {} {}  ",
        lang.pick(&c.headline, &c.headline_en),
        c.not_ready,
        Verdict::NotReady.label(lang),
        c.insufficient_data,
        Verdict::InsufficientData.label(lang)
    );
    let _ = writeln!(
        o,
        "{}: {}/{} {}  ",
        t("Dịch vụ dùng chung", "Shared services"),
        c.services_ready,
        c.services_total,
        Verdict::Ready.label(lang)
    );
    let _ = writeln!(
        o,
        "{}: **{}**\n",
        t("Kết luận", "Conclusion"),
        if c.all_ready {
            t(
                "toàn bộ xã, phường, đặc khu và dịch vụ dùng chung sẵn sàng",
                "every site and shared service is ready",
            )
        } else if c.not_ready == 0 && !r.services.iter().any(|s| s.verdict == Verdict::NotReady) {
            // Nothing failed: what is missing is data, not readiness.
            t(
                "không đủ dữ liệu để kết luận (không nơi nào chưa sẵn sàng)",
                "insufficient data to conclude (nothing is not ready)",
            )
        } else {
            t("chưa sẵn sàng toàn bộ", "not everything is ready")
        }
    );
    for p in &r.prober_incidents {
        let _ = writeln!(
            o,
            "> {} #{}: {}\n",
            t(
                "Cảnh báo: hệ thống giám sát bị gián đoạn",
                "Warning: monitoring impaired"
            ),
            p.id,
            lang.pick(&p.title, &p.title_en)
        );
    }
    let _ = writeln!(o, "## {}\n", t("Tiêu chí", "Criteria"));
    for l in criteria_lines(r, lang) {
        let _ = writeln!(o, "- {l}");
    }
    o.push('\n');

    for verdict in [Verdict::NotReady, Verdict::InsufficientData] {
        let list: Vec<&SiteResult> = r.sites.iter().filter(|s| s.verdict == verdict).collect();
        let _ = writeln!(o, "## {} ({})\n", verdict.title(lang), list.len());
        if list.is_empty() {
            let _ = writeln!(o, "{}\n", t("Không có.", "None."));
            continue;
        }
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} |\n| --- | --- | --- | --- |",
            t("Mã", "Code"),
            t("Xã, phường, đặc khu", "Site"),
            t("Quận, huyện cũ", "Former district"),
            t("Lý do", "Reasons")
        );
        for s in list {
            let reasons = s
                .reasons
                .iter()
                .map(|f| f.text(lang))
                .collect::<Vec<_>>()
                .join("; ");
            let _ = writeln!(
                o,
                "| {} | {}{} | {} | {} |",
                s.code,
                cell(&s.name),
                if s.island {
                    t(" (đảo)", " (island)")
                } else {
                    ""
                },
                cell(&s.former_district),
                cell(&reasons)
            );
        }
        o.push('\n');
    }

    let _ = writeln!(o, "## {}\n", t("Dịch vụ dùng chung", "Shared services"));
    let _ = writeln!(
        o,
        "| {} | {} | {} | {} | {} |\n| --- | --- | --- | --- | --- |",
        t("Dịch vụ", "Service"),
        t("Kết quả", "Verdict"),
        t("Khả dụng thấp nhất", "Lowest availability"),
        t("Độ trễ p95 (cao nhất)", "p95 latency (highest)"),
        t("Lý do", "Reasons")
    );
    for s in &r.services {
        let q = s
            .checks
            .iter()
            .filter_map(|c| c.latency_quantile_ms)
            .max_by(|a, b| a.total_cmp(b));
        let reasons = s
            .reasons
            .iter()
            .map(|f| f.text(lang))
            .collect::<Vec<_>>()
            .join("; ");
        let name = match lang {
            Lang::Vi => s.name.as_str(),
            Lang::En => s.name_en.as_deref().unwrap_or(&s.name),
        };
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} |",
            cell(name),
            s.verdict.label(lang),
            opt_pct(worst_availability(&s.checks), lang),
            opt_ms(q, lang),
            cell(&reasons)
        );
    }
    o.push('\n');

    let groups = |o: &mut String, title: &str, gs: &[Group]| {
        let with_services = gs.iter().any(|g| g.services_total > 0);
        let _ = writeln!(o, "## {title}\n");
        let _ = write!(
            o,
            "| {} | {} | {} | {} | {} |",
            t("Nhóm", "Group"),
            t("Xã, phường", "Sites"),
            Verdict::Ready.title(lang),
            Verdict::NotReady.title(lang),
            Verdict::InsufficientData.title(lang)
        );
        if with_services {
            let _ = write!(
                o,
                " {} |",
                t("Dịch vụ dùng chung sẵn sàng", "Shared services ready")
            );
        }
        o.push_str("\n| --- | ---: | ---: | ---: | ---: |");
        if with_services {
            o.push_str(" ---: |");
        }
        o.push('\n');
        for g in gs {
            let _ = write!(
                o,
                "| {} | {} | {} | {} | {} |",
                cell(lang.pick(&g.name, &g.name_en)),
                g.total,
                g.ready,
                g.not_ready,
                g.insufficient_data
            );
            if with_services {
                if g.services_total > 0 {
                    let _ = write!(o, " {}/{} |", g.services_ready, g.services_total);
                } else {
                    o.push_str(" – |");
                }
            }
            o.push('\n');
        }
        o.push('\n');
    };
    groups(
        &mut o,
        t("Theo tỉnh, thành phố cũ", "By former province"),
        &r.provinces,
    );
    if !r.teams.is_empty() {
        groups(&mut o, t("Theo tổ chuyên trách", "By team"), &r.teams);
    }

    if let Some(f) = &r.team_figures {
        team_figures_md(&mut o, f, lang);
    }

    let _ = writeln!(
        o,
        "## {} ({})\n",
        t("Chi tiết từng xã, phường, đặc khu", "Every site"),
        r.sites.len()
    );
    let _ = writeln!(
        o,
        "| {} | {} | {} | {} | {} | {} | {} | {} |\n| --- | --- | --- | --- | ---: | ---: | ---: | --- |",
        t("Mã", "Code"),
        t("Tên", "Name"),
        t("Khu vực cũ", "Former district"),
        t("Kết quả", "Verdict"),
        t("Khả dụng thấp nhất", "Lowest availability"),
        t("RTT đường truyền", "Link RTT"),
        t("Mất gói", "Loss"),
        t("Phần mềm dùng chung từ phường", "Shared services from the ward")
    );
    for s in &r.sites {
        let link = s.checks.iter().find(|c| c.role == CheckRole::Link.as_str());
        let _ = writeln!(
            o,
            "| {} | {}{} | {} | {} | {} | {} | {} | {} |",
            s.code,
            cell(&s.name),
            if s.island {
                t(" (đảo)", " (island)")
            } else {
                ""
            },
            cell(&s.former_district),
            s.verdict.label(lang),
            opt_pct(worst_availability(&s.checks), lang),
            opt_ms(link.and_then(|c| c.latency_quantile_ms), lang),
            opt_pct(link.and_then(|c| c.loss), lang),
            s.ward_services.text(lang),
        );
    }
    o
}

/// A duration for people: "45 giây", "12 phút", "2 giờ 5 phút", "3 ngày 4 giờ".
pub fn duration_text(secs: f64, lang: Lang) -> String {
    let s = secs.max(0.0).round() as u64;
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    let u = |vi: &'static str, en: &'static str| lang.pick(vi, en);
    if s < 60 {
        format!("{s} {}", u("giây", "s"))
    } else if s < 3600 {
        format!("{} {}", s / 60, u("phút", "min"))
    } else if s < 86_400 {
        format!("{h} {} {m} {}", u("giờ", "h"), u("phút", "min"))
    } else {
        format!("{d} {} {h} {}", u("ngày", "d"), u("giờ", "h"))
    }
}

fn stat_text(st: &crate::incidents::figures::Stat, lang: Lang) -> String {
    match (st.median_seconds, st.p90_seconds, st.max_seconds) {
        (Some(a), Some(b), Some(c)) => format!(
            "{} / {} / {}",
            duration_text(a, lang),
            duration_text(b, lang),
            duration_text(c, lang)
        ),
        _ => "–".into(),
    }
}

fn severity_label(sev: &str, lang: Lang) -> &'static str {
    match sev {
        "critical" => lang.pick("Nghiêm trọng", "Critical"),
        "warning" => lang.pick("Cảnh báo", "Warning"),
        _ => lang.pick("Tất cả", "All"),
    }
}

/// Names of a team line: "Toàn thành phố" for the city line.
pub fn team_label(tf: &crate::incidents::figures::TeamFigures, lang: Lang) -> String {
    if tf.team == "*" {
        lang.pick("Toàn thành phố", "Whole city").to_string()
    } else {
        tf.title.clone()
    }
}

/// The team figures section of the Markdown report.
fn team_figures_md(o: &mut String, f: &crate::incidents::figures::Figures, lang: Lang) {
    let t = |vi: &'static str, en: &'static str| lang.pick(vi, en);
    let _ = writeln!(
        o,
        "## {}\n",
        t(
            "Tổ chuyên trách: thời gian tiếp nhận và khắc phục sự cố",
            "Teams: time to acknowledge and to resolve"
        )
    );
    let _ = writeln!(
        o,
        "{}\n",
        t(
            "Sự cố bắt đầu trong khoảng thời gian báo cáo; thời gian tính từ lúc bắt đầu (trung vị / p90 / lâu nhất). Đang mở: tại thời điểm lập báo cáo.",
            "Incidents started in the window; times from the start (median / p90 / max). Open: at the time of the report."
        )
    );
    let _ = writeln!(
        o,
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n| --- | --- | ---: | ---: | --- | ---: | --- | ---: | --- |",
        t("Tổ", "Team"),
        t("Mức độ", "Severity"),
        t("Sự cố", "Incidents"),
        t("Đã tiếp nhận", "Acknowledged"),
        t("Thời gian tiếp nhận", "Time to acknowledge"),
        t("Đã khắc phục", "Resolved"),
        t("Thời gian khắc phục", "Time to resolve"),
        t("Đang mở", "Open"),
        t("Mở lâu nhất", "Oldest open"),
    );
    for tf in f.teams.iter().chain(std::iter::once(&f.city)) {
        for (i, sf) in tf.severities.iter().enumerate() {
            if i > 0 && sf.incidents == 0 {
                continue;
            }
            let (open, oldest) = if i == 0 {
                (
                    tf.open.count.to_string(),
                    tf.open
                        .oldest_seconds
                        .map_or_else(|| "–".into(), |s| duration_text(s, lang)),
                )
            } else {
                (String::new(), String::new())
            };
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                if i == 0 {
                    cell(&team_label(tf, lang))
                } else {
                    String::new()
                },
                severity_label(&sf.severity, lang),
                sf.incidents,
                sf.acknowledged,
                stat_text(&sf.time_to_acknowledge, lang),
                sf.resolved,
                stat_text(&sf.time_to_resolve, lang),
                open,
                oldest,
            );
        }
    }
    o.push('\n');
    if !f.city.sites.is_empty() {
        let _ = writeln!(
            o,
            "### {}\n\n| {} | {} |\n| --- | ---: |",
            t(
                "Sự cố theo xã, phường, đặc khu (nhiều nhất)",
                "Incidents per site (most first)"
            ),
            t("Đơn vị", "Site"),
            t("Sự cố", "Incidents"),
        );
        for sc in f.city.sites.iter().take(10) {
            let _ = writeln!(o, "| {} | {} |", cell(&sc.site), sc.incidents);
        }
        o.push('\n');
    }
}

/// CSV field quoting (RFC 4180).
pub(super) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn num(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(String::new, |v| format!("{v:.decimals$}"))
}

/// The report as CSV: one line per check (sites, then shared services), with the owner's
/// verdict on every line. Numbers use a decimal point; ratios are 0..1.
pub fn csv(r: &Report, lang: Lang) -> String {
    let mut o = String::from(
        "scope,slug,code,name,former_province,former_district,island,verdict,check,check_verdict,\
         availability,target,latency_quantile_ms,latency_limit_ms,latency_avg_ms,loss,loss_limit,\
         runs,passed,observed_minutes,expected_minutes,maintenance_minutes,reasons,\
         incidents,acknowledged,ack_median_s,ack_p90_s,ack_max_s,resolved,resolve_median_s,\
         resolve_p90_s,resolve_max_s,open_incidents,oldest_open_s\n",
    );
    let mut line = |scope: &str,
                    slug: &str,
                    code: &str,
                    name: &str,
                    prov: &str,
                    dist: &str,
                    island: &str,
                    verdict: Verdict,
                    c: &CheckResult| {
        let reasons = c
            .findings
            .iter()
            .filter(|f| is_failure(f) || is_insufficient(f))
            .map(|f| f.text(lang))
            .collect::<Vec<_>>()
            .join("; ");
        let fields = [
            scope.to_string(),
            slug.to_string(),
            code.to_string(),
            name.to_string(),
            prov.to_string(),
            dist.to_string(),
            island.to_string(),
            verdict.label(lang).to_string(),
            c.name.clone(),
            c.verdict.label(lang).to_string(),
            num(c.availability, 5),
            num(Some(c.target), 4),
            num(c.latency_quantile_ms, 1),
            num(c.latency_limit_ms, 0),
            num(c.latency_avg_ms, 1),
            num(c.loss, 4),
            num(c.loss_limit, 4),
            c.runs.to_string(),
            c.passed.to_string(),
            c.observed_minutes.to_string(),
            c.expected_minutes.to_string(),
            c.maintenance_minutes.to_string(),
            reasons,
        ];
        let row = fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>();
        o.push_str(&row.join(","));
        // The team-figure columns are empty on check lines.
        o.push_str(",,,,,,,,,,,");
        o.push('\n');
    };
    for s in &r.sites {
        // The ward agent's copies (criterion "shared software reachable from the ward") follow
        // the site's own checks; `check` is their full key (`service/<slug>/<check>@site:<slug>`).
        let ward: Vec<CheckResult> = s
            .ward_services
            .checks
            .iter()
            .map(|c| CheckResult {
                name: c.key.clone(),
                ..c.clone()
            })
            .collect();
        for c in s.checks.iter().chain(&ward) {
            line(
                "site",
                &s.slug,
                &s.code,
                &s.name,
                &s.former_province,
                &s.former_district,
                if s.island { "true" } else { "false" },
                s.verdict,
                c,
            );
        }
    }
    for s in &r.services {
        for c in &s.checks {
            line("service", &s.slug, "", &s.name, "", "", "", s.verdict, c);
        }
    }
    // Team figures: one line per team (and the city, slug `*`) and severity; `check` holds
    // the severity (all, critical, warning), times in seconds.
    if let Some(f) = &r.team_figures {
        for tf in f.teams.iter().chain(std::iter::once(&f.city)) {
            for (i, sf) in tf.severities.iter().enumerate() {
                let mut fields = vec![String::new(); 23];
                fields[0] = "team".into();
                fields[1] = tf.team.clone();
                fields[3] = team_label(tf, lang);
                fields[8] = sf.severity.clone();
                let (a, r_) = (&sf.time_to_acknowledge, &sf.time_to_resolve);
                fields.extend([
                    sf.incidents.to_string(),
                    sf.acknowledged.to_string(),
                    num(a.median_seconds, 0),
                    num(a.p90_seconds, 0),
                    num(a.max_seconds, 0),
                    sf.resolved.to_string(),
                    num(r_.median_seconds, 0),
                    num(r_.p90_seconds, 0),
                    num(r_.max_seconds, 0),
                    if i == 0 {
                        tf.open.count.to_string()
                    } else {
                        String::new()
                    },
                    if i == 0 {
                        num(tf.open.oldest_seconds, 0)
                    } else {
                        String::new()
                    },
                ]);
                let row = fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>();
                o.push_str(&row.join(","));
                o.push('\n');
            }
        }
    }
    o
}
