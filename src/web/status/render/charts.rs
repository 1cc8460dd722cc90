//! The availability and loss charts (inline SVG) of the site page.

use super::*;

/// Packet loss of echo rounds per minute (lost / sent) over `[from_m, to_m)`, with the class's
/// degraded loss threshold dashed: on island links loss, not RTT, is what degrades first.
pub fn loss_chart_svg(
    pts: &[SeriesPoint],
    from_m: i64,
    to_m: i64,
    threshold: f64,
    lang: Lang,
) -> String {
    const W: f64 = 720.0;
    const H: f64 = 90.0;
    const L: f64 = 44.0;
    const T: f64 = 8.0;
    const PH: f64 = 60.0;
    let pw = W - L - 8.0;
    let span = (to_m - from_m).max(1) as f64;
    let x = |m: i64| L + (m - from_m) as f64 / span * pw;
    let loss = |p: &SeriesPoint| {
        (p.stats.sent > 0)
            .then(|| f64::from(p.stats.lost.min(p.stats.sent)) / f64::from(p.stats.sent))
    };
    let top = (pts.iter().filter_map(loss).fold(0.0, f64::max) * 1.25)
        .max(threshold * 1.5)
        .clamp(0.01, 1.0);
    let y = |v: f64| T + PH - (v / top).min(1.0) * PH;
    let mut o = String::with_capacity(2048);
    let _ = write!(
        o,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W:.0} {H:.0}" role="img"><title>{}</title><line x1="{L}" y1="{b:.1}" x2="{r:.1}" y2="{b:.1}" stroke="#888"/><line x1="{L}" y1="{T}" x2="{L}" y2="{b:.1}" stroke="#888"/><text x="{tx:.1}" y="{ty:.1}" text-anchor="end">{}</text><text x="{tx:.1}" y="{b:.1}" text-anchor="end">0</text>"##,
        lang.pick("Biểu đồ mất gói", "Packet loss chart"),
        esc(&pct(top, lang)),
        b = T + PH,
        r = L + pw,
        tx = L - 3.0,
        ty = T + 8.0,
    );
    if threshold > 0.0 {
        let _ = write!(
            o,
            r##"<line class="loss-limit" x1="{L}" y1="{yy:.1}" x2="{r:.1}" y2="{yy:.1}" stroke="#a8211a" stroke-dasharray="5 4"/><text x="{r:.1}" y="{ty:.1}" fill="#a8211a" text-anchor="end">{}</text>"##,
            esc(&pct(threshold, lang)),
            yy = y(threshold),
            r = L + pw,
            ty = y(threshold) - 3.0,
        );
    }
    let bw = (pw / span).max(1.0);
    for p in pts {
        if let Some(v) = loss(p) {
            let _ = write!(
                o,
                r##"<rect class="loss" data-minute="{}" x="{:.1}" y="{:.1}" width="{bw:.1}" height="{:.1}" fill="{}"/>"##,
                p.minute,
                x(p.minute),
                y(v),
                T + PH - y(v),
                if v > threshold { "#a8211a" } else { "#5b7fa6" }
            );
        }
    }
    if !pts.iter().any(|p| loss(p).is_some()) {
        let _ = write!(
            o,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#555">{}</text>"##,
            L + pw / 2.0,
            T + PH / 2.0,
            lang.pick("Chưa có dữ liệu", "No data yet")
        );
    }
    o.push_str("</svg>");
    o
}

/// A small latency chart of minute averages over `[from_m, to_m)`, failures, maintenance and
/// "monitor blind" minutes marked under the axis, the class limit dashed.
pub fn chart_svg(
    pts: &[SeriesPoint],
    from_m: i64,
    to_m: i64,
    limit: Option<f64>,
    lang: Lang,
) -> String {
    const W: f64 = 720.0;
    const H: f64 = 130.0;
    const L: f64 = 44.0;
    const T: f64 = 8.0;
    const PH: f64 = 92.0; // plot height
    let pw = W - L - 8.0;
    let span = (to_m - from_m).max(1) as f64;
    let x = |m: i64| L + (m - from_m) as f64 / span * pw;
    let avg = |p: &SeriesPoint| (p.stats.lat_n > 0).then(|| p.stats.lat_sum / p.stats.lat_n as f64);
    // Scaled to the values (the limit is drawn when in range, else named in the corner).
    let top = pts.iter().filter_map(avg).fold(0.0, f64::max) * 1.25;
    let top = if limit.is_some_and(|l| l <= top * 1.6) {
        top.max(limit.unwrap_or(0.0) * 1.1)
    } else {
        top
    }
    .max(1.0);
    let y = |v: f64| T + PH - (v / top).min(1.0) * PH;
    let mut o = String::with_capacity(4096);
    let _ = write!(
        o,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W:.0} {H:.0}" role="img"><title>{}</title>"##,
        lang.pick("Biểu đồ độ trễ", "Latency chart")
    );
    let _ = write!(
        o,
        r##"<line x1="{L}" y1="{b:.1}" x2="{r:.1}" y2="{b:.1}" stroke="#888"/><line x1="{L}" y1="{T}" x2="{L}" y2="{b:.1}" stroke="#888"/><text x="{tx:.1}" y="{ty:.1}" text-anchor="end">{}</text><text x="{tx:.1}" y="{b:.1}" text-anchor="end">0</text>"##,
        esc(&fmt_ms(top, lang)),
        b = T + PH,
        r = L + pw,
        tx = L - 3.0,
        ty = T + 8.0,
    );
    match limit {
        Some(l) if l <= top => {
            let _ = write!(
                o,
                r##"<line x1="{L}" y1="{yy:.1}" x2="{r:.1}" y2="{yy:.1}" stroke="#a8211a" stroke-dasharray="5 4"/><text x="{tx:.1}" y="{ty:.1}" fill="#a8211a" text-anchor="end">{}</text>"##,
                esc(&fmt_ms(l, lang)),
                yy = y(l),
                r = L + pw,
                tx = L + pw,
                ty = y(l) - 3.0,
            );
        }
        Some(l) => {
            let _ = write!(
                o,
                r##"<text x="{tx:.1}" y="{ty:.1}" fill="#a8211a" text-anchor="end">{} {} ↑</text>"##,
                lang.pick("ngưỡng", "limit"),
                esc(&fmt_ms(l, lang)),
                tx = L + pw,
                ty = T + 8.0,
            );
        }
        None => {}
    }
    // Time labels.
    for m in [from_m, from_m + (to_m - from_m) / 2, to_m] {
        let hm = local_hms(m * 60_000);
        let _ = write!(
            o,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            x(m).clamp(L + 12.0, W - 20.0),
            H - 4.0,
            &hm[..5]
        );
    }
    // Failure and maintenance marks.
    let bw = (pw / span).max(1.0);
    for p in pts {
        let s = &p.stats;
        let fill = if s.attempts > 0 && s.successes < s.attempts {
            "#a8211a"
        } else if s.attempts == 0 && s.maint > 0 {
            "#8a8a8a"
        } else if s.attempts == 0 && s.blind > 0 {
            // The prober itself was cut off: nothing was seen of the site ("monitor blind").
            "#6a4c9c"
        } else {
            continue;
        };
        let _ = write!(
            o,
            r##"<rect x="{:.1}" y="{:.1}" width="{bw:.1}" height="7" fill="{fill}"/>"##,
            x(p.minute),
            T + PH + 2.0
        );
    }
    // The line, broken over gaps.
    let mut path = String::new();
    let mut prev: Option<i64> = None;
    for p in pts {
        let Some(v) = avg(p) else {
            prev = None;
            continue;
        };
        let cmd = if prev.is_some_and(|m| p.minute - m <= 2) {
            'L'
        } else {
            'M'
        };
        let _ = write!(path, "{cmd}{:.1} {:.1}", x(p.minute) + bw / 2.0, y(v));
        prev = Some(p.minute);
    }
    if path.is_empty() {
        let _ = write!(
            o,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            L + pw / 2.0,
            T + PH / 2.0,
            lang.pick("Chưa có dữ liệu", "No data yet")
        );
    } else {
        let _ = write!(
            o,
            r##"<path d="{path}" fill="none" stroke="#123a5c" stroke-width="1.5"/>"##
        );
    }
    o.push_str("</svg>");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Minutes seen only while the prober was cut off are marked as such, apart from failures.
    #[test]
    fn chart_marks_monitor_blind_minutes() {
        use crate::availability::MinuteStats;
        let pt = |minute, stats| SeriesPoint { minute, stats };
        let pts = [
            pt(
                0,
                MinuteStats {
                    attempts: 6,
                    successes: 6,
                    lat_n: 6,
                    lat_sum: 60.0,
                    ..Default::default()
                },
            ),
            pt(
                1,
                MinuteStats {
                    blind: 6,
                    ..Default::default()
                },
            ),
            pt(
                2,
                MinuteStats {
                    attempts: 6,
                    successes: 3,
                    ..Default::default()
                },
            ),
        ];
        let svg = chart_svg(&pts, 0, 3, None, Lang::Vi);
        assert_eq!(svg.matches("#6a4c9c").count(), 1, "one blind minute");
        assert_eq!(
            svg.matches("fill=\"#a8211a\"").count(),
            1,
            "one failed minute"
        );
    }
}
