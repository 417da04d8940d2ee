//! Plots for report.html as plain SVG: lines and points on two linear axes.

/// One series of a plot.
pub struct Series<'a> {
    /// Legend label.
    pub name: &'a str,
    /// CSS colour.
    pub color: &'a str,
    /// (x, y) points.
    pub points: Vec<(f64, f64)>,
    /// Points instead of a line.
    pub scatter: bool,
}

const W: f64 = 480.0;
const H: f64 = 360.0;
const M: f64 = 48.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A plot of `series` over [x0, x1] × [y0, y1].
pub fn plot(title: &str, xlabel: &str, ylabel: &str, x: (f64, f64), y: (f64, f64), series: &[Series<'_>]) -> String {
    let sx = |v: f64| M + (v - x.0) / (x.1 - x.0).max(1e-12) * (W - 2.0 * M);
    let sy = |v: f64| H - M - (v - y.0) / (y.1 - y.0).max(1e-12) * (H - 2.0 * M);
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="18" text-anchor="middle" font-size="13">{}</text>
<line x1="{M}" y1="{}" x2="{}" y2="{}" stroke="black"/><line x1="{M}" y1="{M}" x2="{M}" y2="{}" stroke="black"/>
<text x="{}" y="{}" text-anchor="middle">{}</text>
<text x="12" y="{}" text-anchor="middle" transform="rotate(-90 12 {})">{}</text>
"#,
        W / 2.0,
        esc(title),
        H - M,
        W - M,
        H - M,
        H - M,
        W / 2.0,
        H - 10.0,
        esc(xlabel),
        H / 2.0,
        H / 2.0,
        esc(ylabel)
    );
    for i in 0..=4 {
        let (vx, vy) = (x.0 + (x.1 - x.0) * f64::from(i) / 4.0, y.0 + (y.1 - y.0) * f64::from(i) / 4.0);
        s += &format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
            sx(vx),
            H - M + 14.0,
            tick(vx),
            M - 4.0,
            sy(vy) + 4.0,
            tick(vy)
        );
    }
    for (i, ser) in series.iter().enumerate() {
        if ser.scatter {
            for (px, py) in &ser.points {
                s += &format!(
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"1.5\" fill=\"{}\" fill-opacity=\"0.5\"/>",
                    sx(*px),
                    sy(*py),
                    ser.color
                );
            }
        } else {
            let pts: Vec<String> = ser.points.iter().map(|(px, py)| format!("{:.1},{:.1}", sx(*px), sy(*py))).collect();
            s += &format!(
                "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" points=\"{}\"/>\n",
                ser.color,
                pts.join(" ")
            );
        }
        let ly = M + 4.0 + 14.0 * i as f64;
        s += &format!(
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"10\" height=\"3\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>\n",
            W - M - 150.0,
            ly,
            ser.color,
            W - M - 136.0,
            ly + 4.0,
            esc(ser.name)
        );
    }
    s + "</svg>\n"
}

fn tick(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Horizontal bars: (label, value), largest first.
pub fn bars(title: &str, xlabel: &str, items: &[(String, f64)]) -> String {
    let h = 40.0 + 18.0 * items.len() as f64 + 30.0;
    let max = items.iter().map(|(_, v)| *v).fold(1e-12, f64::max);
    let (left, width) = (190.0, W + 120.0 - 190.0 - 20.0);
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{h}" font-family="sans-serif" font-size="11">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="18" text-anchor="middle" font-size="13">{}</text>
"#,
        W + 120.0,
        (W + 120.0) / 2.0,
        esc(title)
    );
    for (i, (label, v)) in items.iter().enumerate() {
        let y = 36.0 + 18.0 * i as f64;
        s += &format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text><rect x=\"{left}\" y=\"{:.1}\" width=\"{:.1}\" height=\"12\" fill=\"#1f77b4\"/><text x=\"{:.1}\" y=\"{:.1}\">{:.4}</text>\n",
            left - 6.0,
            y + 10.0,
            esc(label),
            y,
            v / max * (width - 50.0),
            left + v / max * (width - 50.0) + 4.0,
            y + 10.0,
            v
        );
    }
    s += &format!(
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
        left + width / 2.0,
        h - 8.0,
        esc(xlabel)
    );
    s + "</svg>\n"
}
