//! The schematic map of the sites, inline SVG.

use super::*;

/// The schematic map: each site at its lat/lon (equirectangular), drawn by status with a shape
/// as well as a colour; an inset enlarges the dense inner city; Côn Đảo keeps its true
/// longitude, far to the south, across a marked break in the sea.
pub fn map_svg(inv: &Inventory, status: &HashMap<&str, SiteStatus>, lang: Lang) -> String {
    const W: f64 = 420.0;
    const LON0: f64 = 106.30;
    const LON1: f64 = 107.65;
    const LAT_TOP: f64 = 11.52;
    const LAT_MAIN_BOTTOM: f64 = 10.28;
    const LAT_SOUTH_TOP: f64 = 8.85;
    const LAT_SOUTH_BOTTOM: f64 = 8.55;
    const GAP: f64 = 46.0;
    let kx = W / (LON1 - LON0);
    let ky = kx / (10.9f64.to_radians().cos());
    let main_h = (LAT_TOP - LAT_MAIN_BOTTOM) * ky;
    let south_top = main_h + GAP;
    let h = south_top + (LAT_SOUTH_TOP - LAT_SOUTH_BOTTOM) * ky + 34.0;
    let proj = |lat: f64, lon: f64| -> (f64, f64) {
        let x = (lon - LON0) * kx;
        let y = if lat >= LAT_MAIN_BOTTOM - 0.05 {
            (LAT_TOP - lat) * ky
        } else {
            south_top + (LAT_SOUTH_TOP - lat) * ky
        };
        (x, y)
    };
    // Inner-city inset.
    let (ilat0, ilat1, ilon0, ilon1) = (10.70, 10.885, 106.585, 106.80);
    let (iw, ix, iy) = (200.0, W - 206.0, 6.0);
    let ik = iw / (ilon1 - ilon0);
    let iky = ik / (10.8f64.to_radians().cos());
    let ih = (ilat1 - ilat0) * iky;
    let in_inset =
        |lat: f64, lon: f64| (ilat0..=ilat1).contains(&lat) && (ilon0..=ilon1).contains(&lon);

    let mut o = String::with_capacity(40_000);
    let _ = write!(
        o,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W:.0} {h:.0}" role="img" aria-labelledby="map-t map-d"><title id="map-t">{}</title><desc id="map-d">{}</desc>"##,
        lang.pick("Bản đồ sơ đồ các xã, phường, đặc khu", "Schematic map of the sites"),
        lang.pick(
            "Mỗi điểm là một xã, phường, đặc khu tại vị trí kinh độ, vĩ độ; hình dạng và màu cho biết trạng thái. Khung nhỏ phóng to khu trung tâm. Côn Đảo ở xa về phía nam, khoảng biển ở giữa được rút ngắn.",
            "Each mark is a site at its latitude and longitude; shape and colour give its status. The inset enlarges the inner city. Côn Đảo lies far to the south; the sea between is shortened."
        )
    );
    o.push_str(r##"<defs><symbol id="m-up" viewBox="-5 -5 10 10" overflow="visible"><circle r="3.6"/></symbol><symbol id="m-degraded" viewBox="-5 -5 10 10" overflow="visible"><path d="M0-4.6L4.3 3.4H-4.3z"/></symbol><symbol id="m-down" viewBox="-5 -5 10 10" overflow="visible"><path d="M-2-4.5h4l2.5 2.5v4L2 4.5h-4L-4.5 2v-4z"/><path d="M-2-2l4 4M2-2l-4 4" stroke="#fff" stroke-width="1.3"/></symbol><symbol id="m-maintenance" viewBox="-5 -5 10 10" overflow="visible"><rect x="-3.6" y="-3.6" width="7.2" height="7.2"/></symbol><symbol id="m-unknown" viewBox="-5 -5 10 10" overflow="visible"><circle r="3.2" fill="#fff" stroke="#777" stroke-width="1.6"/></symbol></defs>"##);
    // Sea break.
    let by = main_h + GAP / 2.0;
    let _ = write!(
        o,
        r##"<rect x="0" y="0" width="{W:.0}" height="{h:.0}" fill="#f3f7fa"/><path d="M0 {y0:.1} l10 -5 l10 10 l10 -10 l10 10 l10 -5" transform="translate(0 0)" fill="none" stroke="#9bb" stroke-width="1"/><line x1="60" y1="{by:.1}" x2="{W:.0}" y2="{by:.1}" stroke="#9bb" stroke-dasharray="4 4"/><text x="64" y="{t:.1}">{}</text>"##,
        lang.pick(
            "≈ 180 km biển (rút ngắn) — Côn Đảo ở phía nam",
            "≈ 180 km of sea (shortened) — Côn Đảo to the south"
        ),
        y0 = by,
        t = by - 4.0,
    );
    // Province labels at the centroid of their sites.
    let mut cent: Vec<(&str, f64, f64, f64)> = Vec::new();
    for s in inv.sites.iter().filter(|s| s.lat >= LAT_MAIN_BOTTOM) {
        match cent.iter_mut().find(|c| c.0 == s.former_province) {
            Some(c) => {
                c.1 += s.lat;
                c.2 += s.lon;
                c.3 += 1.0;
            }
            None => cent.push((&s.former_province, s.lat, s.lon, 1.0)),
        }
    }
    let mark = |o: &mut String, x: f64, y: f64, s: &SiteInfo, scale: f64| {
        let st = status
            .get(s.slug.as_str())
            .copied()
            .unwrap_or(SiteStatus::Unknown);
        // Faults are drawn larger, so one stands out among a hundred healthy neighbours.
        let grow = match st {
            SiteStatus::Down | SiteStatus::Degraded => 1.5,
            _ => 1.0,
        };
        let r = 5.0 * scale * grow;
        let _ = write!(
            o,
            r##"<a href="/sites/{slug}{ls}"><title>{name} — {label}</title><use href="#m-{st}" class="m m-{st}" x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{w:.1}"/></a>"##,
            slug = esc(&s.slug),
            ls = lang_suffix(lang, true),
            st = st.as_str(),
            x = x - r,
            y = y - r,
            w = 2.0 * r,
            name = esc(&s.name),
            label = status_label(st, lang),
        );
    };
    // Draw worse statuses last (on top).
    let mut order: Vec<&SiteInfo> = inv.sites.iter().collect();
    order.sort_by_key(|s| {
        severity_rank(
            status
                .get(s.slug.as_str())
                .copied()
                .unwrap_or(SiteStatus::Unknown),
        )
    });
    for s in &order {
        let (x, y) = proj(s.lat, s.lon);
        mark(
            &mut o,
            x,
            y,
            s,
            if in_inset(s.lat, s.lon) { 0.75 } else { 1.0 },
        );
    }
    // Province names where the map has room (the shipped three), else at their centroid.
    for (p, lat, lon, n) in &cent {
        let (lat, lon) = match *p {
            "binh-duong" => (11.49, 106.31),
            "tphcm" => (10.62, 106.31),
            "ba-ria-vung-tau" => (10.31, 107.12),
            _ => (lat / n, lon / n),
        };
        let (x, y) = proj(lat, lon);
        let (vi, en) = readiness::province_name(p);
        let _ = write!(
            o,
            r##"<text x="{:.1}" y="{:.1}" font-weight="600">{}</text>"##,
            x.clamp(2.0, W - 120.0),
            y,
            esc(lang.pick(&vi, &en))
        );
    }
    // Island names: to the left of the westernmost of two close islands.
    let islands: Vec<&SiteInfo> = inv.sites.iter().filter(|s| s.island).collect();
    for s in &islands {
        let (x, y) = proj(s.lat, s.lon);
        let crowded = islands
            .iter()
            .any(|o| o.slug != s.slug && (o.lat - s.lat).abs() < 0.1 && o.lon > s.lon);
        let (tx, anchor) = if crowded {
            (x - 6.0, "end")
        } else {
            (x + 6.0, "start")
        };
        let _ = write!(
            o,
            r##"<text x="{tx:.1}" y="{:.1}" text-anchor="{anchor}">{}</text>"##,
            y + 3.5,
            esc(&s.name)
        );
    }
    // Inset: the frame of the enlarged area on the map, then the enlargement.
    let (fx0, fy0) = proj(ilat1, ilon0);
    let (fx1, fy1) = proj(ilat0, ilon1);
    let _ = write!(
        o,
        r##"<rect x="{fx0:.1}" y="{fy0:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="#123a5c" stroke-width=".8"/><line x1="{fx1:.1}" y1="{fy0:.1}" x2="{ix:.1}" y2="{:.1}" stroke="#123a5c" stroke-width=".6" stroke-dasharray="3 2"/><rect x="{ix:.1}" y="{iy:.1}" width="{iw:.1}" height="{ih:.1}" fill="#fff" stroke="#123a5c"/><text x="{:.1}" y="{:.1}">{}</text>"##,
        fx1 - fx0,
        fy1 - fy0,
        iy + ih,
        ix + 4.0,
        iy + ih + 12.0,
        lang.pick("Khu trung tâm (phóng to)", "Inner city (enlarged)"),
    );
    for s in order.iter().filter(|s| in_inset(s.lat, s.lon)) {
        let x = ix + (s.lon - ilon0) * ik;
        let y = iy + (ilat1 - s.lat) * iky;
        mark(&mut o, x, y, s, 1.0);
    }
    // Legend, under Côn Đảo, on two rows when one is not wide enough.
    let mut ly = h - 22.0;
    let mut lx = 4.0;
    for st in [
        SiteStatus::Up,
        SiteStatus::Degraded,
        SiteStatus::Down,
        SiteStatus::Maintenance,
        SiteStatus::Unknown,
    ] {
        let label = status_label(st, lang);
        let width = 24.0 + label.chars().count() as f64 * 6.3;
        if lx + width > W {
            lx = 4.0;
            ly += 15.0;
        }
        let _ = write!(
            o,
            r##"<use href="#m-{s}" class="m m-{s}" x="{x:.1}" y="{y:.1}" width="10" height="10"/><text class="legend" x="{tx:.1}" y="{ty:.1}">{label}</text>"##,
            s = st.as_str(),
            x = lx,
            y = ly - 5.0,
            tx = lx + 12.0,
            ty = ly + 4.0,
        );
        lx += width;
    }
    o.push_str("</svg>");
    o
}

/// Escapes text for HTML / SVG text and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}
