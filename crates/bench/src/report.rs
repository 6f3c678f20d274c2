//! The results: the markdown table, the raw JSON and the SVG chart.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::anyhow;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde_json::{json, Value};

/// One measured scenario.
#[derive(Debug, Clone)]
pub struct Row {
    pub store: &'static str,
    /// 1, or the `--scale` factor of the larger data set.
    pub scale: u64,
    pub scenario: &'static str,
    pub requests: u64,
    pub errors: u64,
    /// The errors by HTTP status; 0 when no answer came.
    pub errors_by_status: BTreeMap<u16, u64>,
    pub seconds: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Completed purchases (order + pay), for the mixed shop.
    pub purchases: Option<u64>,
    pub note: String,
}

impl Row {
    /// The row of a driven scenario.
    pub fn measured(
        store: &'static str,
        scale: u64,
        scenario: &'static str,
        outcome: &crate::load::Outcome,
        purchases: Option<u64>,
        note: String,
    ) -> Self {
        Self {
            store,
            scale,
            scenario,
            requests: outcome.requests,
            errors: outcome.errors,
            errors_by_status: outcome.errors_by_status.clone(),
            seconds: outcome.seconds,
            p50_ms: outcome.p50_ms,
            p99_ms: outcome.p99_ms,
            purchases,
            note,
        }
    }

    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.seconds.max(1e-9)
    }

    /// The error count, with its statuses when there are any: `32 (503 ×30, none ×2)`.
    fn errors(&self) -> String {
        if self.errors_by_status.is_empty() {
            return self.errors.to_string();
        }
        let statuses: Vec<String> =
            self.errors_by_status
                .iter()
                .map(|(&status, n)| {
                    if status == 0 {
                        format!("no answer ×{n}")
                    } else {
                        format!("{status} ×{n}")
                    }
                })
                .collect();
        format!("{} ({})", self.errors, statuses.join(", "))
    }

    fn data(&self) -> String {
        format!("{}×", self.scale)
    }

    fn json(&self, ceiling: Option<f64>) -> Value {
        json!({
            "store": self.store,
            "data": self.data(),
            "scale": self.scale,
            "scenario": self.scenario,
            "requests": self.requests,
            "errors": self.errors,
            "errors_by_status": self.errors_by_status.iter().map(|(s, n)| (s.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
            "seconds": round(self.seconds, 3),
            "req_per_s": round(self.rate(), 1),
            "vs_ceiling_percent": ceiling.map(|c| round(100.0 * self.rate() / c, 2)),
            "p50_ms": round(self.p50_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "purchases": self.purchases,
            "purchases_per_s": self.purchases.map(|p| round(p as f64 / self.seconds.max(1e-9), 1)),
            "note": self.note,
        })
    }
}

/// A server's peak resident memory.
#[derive(Debug, Clone)]
pub struct Rss {
    pub store: &'static str,
    pub scale: u64,
    pub mib: Option<f64>,
}

/// A whole number with its thousands apart: `43 773`.
pub fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10_f64.powi(digits);
    (x * f).round() / f
}

/// The ceiling: the in-memory `GET /health`, the same HTTP stack with nothing behind it. On
/// MariaDB `/health` itself reads the database, so it is a scenario there, not a ceiling.
pub fn ceiling(rows: &[Row]) -> Option<f64> {
    rows.iter().find(|r| r.store == "memory" && r.scenario == "GET /health").map(Row::rate)
}

fn percent(rate: f64, ceiling: Option<f64>) -> String {
    ceiling.map_or("–".to_owned(), |c| format!("{:.0} %", 100.0 * rate / c))
}

/// The main table: one row per store, data size and scenario.
pub fn table(rows: &[Row], rss: &[Rss]) -> String {
    let ceiling = ceiling(rows);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| store | data | scenario | req/s | vs ceiling | p50 ms | p99 ms | errors | note |"
    );
    let _ = writeln!(out, "|---|---|---|---:|---:|---:|---:|---:|---|");
    for row in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.0} | {} | {:.2} | {:.2} | {} | {} |",
            row.store,
            row.data(),
            row.scenario,
            row.rate(),
            percent(row.rate(), ceiling),
            row.p50_ms,
            row.p99_ms,
            row.errors(),
            row.note
        );
    }
    let _ = writeln!(out);
    for peak in rss {
        let _ = writeln!(
            out,
            "Peak server RSS ({}, {}× data): {}  ",
            peak.store,
            peak.scale,
            peak.mib.map_or("n/a".to_owned(), |mib| format!("{mib:.1} MiB"))
        );
    }
    out
}

/// How each scenario's cost grows with the data: its 1× and its larger run side by side.
pub fn growth(rows: &[Row]) -> Option<String> {
    let mut out = String::new();
    for big in rows.iter().filter(|r| r.scale > 1) {
        let Some(small) = rows
            .iter()
            .find(|r| r.scale == 1 && r.store == big.store && r.scenario == big.scenario)
        else {
            continue;
        };
        if out.is_empty() {
            let _ = writeln!(
                out,
                "| store | scenario | req/s 1× | req/s {s}× | {s}× / 1× | p99 ms 1× | p99 ms {s}× |",
                s = big.scale
            );
            let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|");
        }
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} |",
            big.store,
            big.scenario,
            small.rate(),
            big.rate(),
            big.rate() / small.rate().max(1e-9),
            small.p99_ms,
            big.p99_ms
        );
    }
    (!out.is_empty()).then_some(out)
}

/// The MariaDB figures of this run against issue 15's goals (one MariaDB, 1× data), with the
/// naive baseline's ratio; `None` when MariaDB was not measured.
pub fn goals(rows: &[Row]) -> Option<String> {
    let find = |scenario: &str| {
        rows.iter().find(|r| r.store == "mariadb" && r.scale == 1 && r.scenario == scenario)
    };
    let rate_p99 =
        |r: &Row, unit: &str| format!("{} {unit}, p99 {:.1} ms", thousands(r.rate()), r.p99_ms);
    // (workload, this run, goal, met)
    let mut lines: Vec<(&str, String, &str, bool)> = Vec::new();
    let product = find("GET /product/{id}");
    if let Some(r) = product {
        let met = r.rate() >= 40_000.0 && r.p99_ms <= 5.0;
        lines.push((
            "`GET /product/{id}`",
            rate_p99(r, "req/s"),
            "≥ 40 000 req/s, p99 ≤ 5 ms",
            met,
        ));
    }
    if let Some(r) = find("GET /user/{id}/point") {
        let met = r.rate() >= 40_000.0;
        lines.push(("`GET /user/{id}/point`", rate_p99(r, "req/s"), "≥ 40 000 req/s", met));
    }
    if let (Some(r), Some(p)) = (find("GET /health"), product) {
        let this = format!(
            "{} req/s, {:.2}× `GET /product/{{id}}`",
            thousands(r.rate()),
            r.rate() / p.rate().max(1e-9)
        );
        lines.push(("`GET /health`", this, "≥ `GET /product/{id}`", r.rate() >= p.rate()));
    }
    let hot = find("POST order, one hot product");
    if let Some(r) = hot {
        let met = r.rate() >= 15_000.0;
        lines.push((
            "`POST /order`, one hot product",
            rate_p99(r, "orders/s"),
            "≥ 15 000 orders/s",
            met,
        ));
    }
    if let (Some(r), Some(n)) =
        (hot, find("POST order, one hot product, one transaction per order (naive)"))
    {
        let ratio = r.rate() / n.rate().max(1e-9);
        let this =
            format!("{} vs {} orders/s: {ratio:.1}×", thousands(r.rate()), thousands(n.rate()));
        lines.push(("the same vs one transaction per order (naive)", this, "≥ 20×", ratio >= 20.0));
    }
    if let Some(r) = find("purchase (order + pay), spread over products") {
        let purchases = r.purchases.unwrap_or(r.requests / 2) as f64 / r.seconds.max(1e-9);
        let this = format!("{} purchases/s", thousands(purchases));
        lines.push((
            "order + pay over the catalog",
            this,
            "≥ 5 000 purchases/s",
            purchases >= 5_000.0,
        ));
    }
    if lines.is_empty() {
        return None;
    }
    let mut out = String::from("| workload (MariaDB, 1× data) | this run | goal | met |\n");
    out.push_str("|---|---|---|---|\n");
    for (workload, this, goal, met) in lines {
        let met = if met { "yes" } else { "no" };
        let _ = writeln!(out, "| {workload} | {this} | {goal} | {met} |");
    }
    Some(out)
}

/// Everything the run measured, for machines.
pub fn json(rows: &[Row], rss: &[Rss], header: Value) -> Value {
    let ceiling = ceiling(rows);
    let mut report = header;
    report["ceiling_req_per_s"] = json!(ceiling.map(|c| round(c, 1)));
    report["rows"] = rows.iter().map(|r| r.json(ceiling)).collect();
    report["peak_rss_mib"] = rss
        .iter()
        .map(|p| json!({"store": p.store, "scale": p.scale, "mib": p.mib.map(|m| round(m, 1))}))
        .collect();
    report
}

const MEMORY: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const MARIADB: RGBColor = RGBColor(0xe6, 0x7e, 0x22);

fn colour(store: &str) -> RGBColor {
    if store == "memory" {
        MEMORY
    } else {
        MARIADB
    }
}

/// A horizontal grouped bar chart: one group per scenario and data size, one bar per store,
/// each the scenario's req/s as a share of the run's ceiling.
pub fn chart(rows: &[Row], subtitle: &str) -> anyhow::Result<String> {
    let ceiling = ceiling(rows).ok_or_else(|| anyhow!("no in-memory GET /health to scale to"))?;
    let stores: Vec<&'static str> =
        ["memory", "mariadb"].into_iter().filter(|s| rows.iter().any(|r| r.store == *s)).collect();
    let mut groups: Vec<(u64, &'static str)> = Vec::new();
    for row in rows {
        if !groups.contains(&(row.scale, row.scenario)) {
            groups.push((row.scale, row.scenario));
        }
    }
    let (bar, gap, top, label_width, bar_width, right) = (15, 12, 92, 330, 560, 110);
    let group_height = bar * stores.len() as i32 + gap;
    let width = label_width + bar_width + right;
    let height = top + group_height * groups.len() as i32 + 44;
    let max_percent = rows
        .iter()
        .map(|r| 100.0 * r.rate() / ceiling)
        .fold(100.0_f64, f64::max)
        .div_euclid(25.0)
        .mul_add(25.0, 25.0)
        .min(200.0);
    let x_of =
        |p: f64| label_width + (f64::from(bar_width) * p.min(max_percent) / max_percent) as i32;

    let mut svg = String::new();
    {
        let root =
            SVGBackend::with_string(&mut svg, (width as u32, height as u32)).into_drawing_area();
        let failed = |e: DrawingAreaErrorKind<_>| anyhow!("drawing the chart: {e}");
        root.fill(&WHITE).map_err(failed)?;
        let font = |size: i32| ("sans-serif", size).into_font().color(&BLACK);
        root.draw(&Text::new(
            format!(
                "mall-bench: req/s as % of the in-memory GET /health ({} req/s); higher is better",
                thousands(ceiling)
            ),
            (16, 22),
            font(19),
        ))
        .map_err(failed)?;
        root.draw(&Text::new(subtitle.to_owned(), (16, 44), font(14).color(&RGBColor(80, 80, 80))))
            .map_err(failed)?;
        // Legend.
        let mut x = label_width;
        for store in &stores {
            root.draw(&Rectangle::new([(x, 58), (x + 14, 72)], colour(store).filled()))
                .map_err(failed)?;
            root.draw(&Text::new(store.to_string(), (x + 20, 60), font(14))).map_err(failed)?;
            x += 120;
        }
        // Every other group shaded, then the grid lines and their labels, then the bars.
        for g in (0..groups.len() as i32).step_by(2) {
            let y0 = top + group_height * g;
            root.draw(&Rectangle::new(
                [(8, y0 - gap / 2), (width - 8, y0 + group_height - gap / 2)],
                RGBColor(246, 246, 246).filled(),
            ))
            .map_err(failed)?;
        }
        let bottom = top + group_height * groups.len() as i32;
        let mut p = 0.0;
        while p <= max_percent + 0.1 {
            let x = x_of(p);
            let line = if p == 100.0 { RGBColor(90, 90, 90) } else { RGBColor(215, 215, 215) };
            root.draw(&PathElement::new(vec![(x, top - 6), (x, bottom)], line)).map_err(failed)?;
            let centred = font(13).pos(Pos::new(HPos::Center, VPos::Top));
            root.draw(&Text::new(format!("{p:.0} %"), (x, bottom + 6), centred)).map_err(failed)?;
            p += 25.0;
        }
        // The bars.
        for (g, (scale, scenario)) in groups.iter().enumerate() {
            let y0 = top + group_height * g as i32;
            let label = if *scale == 1 {
                scenario.to_string()
            } else {
                format!("{scenario} [{scale}× data]")
            };
            let right_aligned = font(13).pos(Pos::new(HPos::Right, VPos::Center));
            let middle = y0 + bar * stores.len() as i32 / 2;
            root.draw(&Text::new(label, (label_width - 8, middle), right_aligned))
                .map_err(failed)?;
            for (s, store) in stores.iter().enumerate() {
                let Some(row) = rows
                    .iter()
                    .find(|r| r.store == *store && r.scale == *scale && r.scenario == *scenario)
                else {
                    continue;
                };
                let y = y0 + bar * s as i32;
                let share = 100.0 * row.rate() / ceiling;
                let end = x_of(share).max(label_width + 1);
                root.draw(&Rectangle::new(
                    [(label_width, y + 1), (end, y + bar - 1)],
                    colour(store).filled(),
                ))
                .map_err(failed)?;
                let value = font(12).pos(Pos::new(HPos::Left, VPos::Center));
                root.draw(&Text::new(
                    format!("{share:.0} % · {}/s", thousands(row.rate())),
                    (end + 5, y + bar / 2),
                    value,
                ))
                .map_err(failed)?;
            }
        }
        root.present().map_err(failed)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(store: &'static str, scale: u64, scenario: &'static str, requests: u64) -> Row {
        Row {
            store,
            scale,
            scenario,
            requests,
            errors: 0,
            errors_by_status: BTreeMap::new(),
            seconds: 1.0,
            p50_ms: 1.0,
            p99_ms: 2.0,
            purchases: None,
            note: String::new(),
        }
    }

    #[test]
    fn the_goals_table_gives_the_naive_ratio_and_says_which_goals_are_met() {
        let mut purchase =
            row("mariadb", 1, "purchase (order + pay), spread over products", 12_000);
        purchase.purchases = Some(6_000);
        let rows = vec![
            row("mariadb", 1, "GET /health", 30_000),
            row("mariadb", 1, "GET /product/{id}", 41_000),
            row("mariadb", 1, "GET /user/{id}/point", 39_000),
            row("mariadb", 1, "POST order, one hot product", 4_000),
            row(
                "mariadb",
                1,
                "POST order, one hot product, one transaction per order (naive)",
                400,
            ),
            purchase,
            row("mariadb", 10, "GET /product/{id}", 90_000),
        ];
        let goals = goals(&rows).expect("MariaDB rows");
        let lines: Vec<&str> = goals.lines().collect();
        assert_eq!(lines.len(), 8, "{goals}");
        assert!(
            lines[2].starts_with("| `GET /product/{id}` | 41 000 req/s")
                && lines[2].ends_with("| yes |")
        );
        assert!(lines[3].ends_with("| no |"), "39k point reads miss 40k: {goals}");
        assert!(lines[4].contains("0.73× `GET /product/{id}`") && lines[4].ends_with("| no |"));
        assert!(lines[5].contains("4 000 orders/s") && lines[5].ends_with("| no |"));
        assert!(lines[6].contains("4 000 vs 400 orders/s: 10.0×") && lines[6].ends_with("| no |"));
        assert!(lines[7].contains("6 000 purchases/s") && lines[7].ends_with("| yes |"));
    }

    #[test]
    fn the_chart_and_the_tables_have_every_row() -> anyhow::Result<()> {
        let rows = vec![
            row("memory", 1, "GET /health", 20_000),
            row("memory", 1, "GET /product/{id}", 19_000),
            row("mariadb", 1, "GET /product/{id}", 4_000),
            row("memory", 10, "GET /product/{id}", 18_000),
            row("mariadb", 10, "GET /product/{id}", 2_000),
        ];
        let rss = [Rss { store: "memory", scale: 1, mib: Some(40.0) }];
        let svg = chart(&rows, "test")?;
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("GET /product/{id} [10× data]"));
        assert!(svg.contains("20 % · 4 000/s"), "{svg}");
        assert_eq!(thousands(1_000_000.4), "1 000 000");
        assert_eq!(thousands(999.0), "999");
        let table = table(&rows, &rss);
        assert!(table.contains("| mariadb | 10× | GET /product/{id} | 2000 | 10 % |"), "{table}");
        let growth = growth(&rows).unwrap_or_default();
        assert!(
            growth.contains("| mariadb | GET /product/{id} | 4000 | 2000 | 0.50 |"),
            "{growth}"
        );
        assert!(goals(&rows[..2]).is_none(), "no MariaDB rows, no goals");
        let goals = goals(&rows).unwrap_or_default();
        assert!(goals.contains("| `GET /product/{id}` | 4 000 req/s, p99 2.0 ms |"), "{goals}");
        assert!(goals.ends_with("| no |\n"), "{goals}");
        let json = json(&rows, &rss, json!({"command": "x"}));
        assert_eq!(json["rows"].as_array().map(Vec::len), Some(5));
        assert_eq!(json["ceiling_req_per_s"], 20_000.0);
        Ok(())
    }
}
