//! The figures of a sitting as one Markdown table: the median of each (bench, mode) over the
//! rounds, one row per bench, one column per mode, then the ratios of recorded to unrecorded
//! and to Erlang, oriented so that a ratio above 1 means Theater is slower or worse.

use std::collections::HashMap;

/// The keys a line's main figure may have, in order of preference (a line may also name its
/// own with `figure`).
const FIGURES: &[&str] = &[
    "round_trip_us",
    "requests_per_second",
    "p99_us",
    "messages_per_second",
    "ops_per_second",
    "hop_us",
    "per_child_us",
    "us_per_spawn",
    "events_per_second",
    "seconds_per_gib",
    "bytes_per_actor",
    "wake_us",
    "allocations_per_message",
    "seconds",
];
/// Higher is better for these; the other figures are times or sizes.
const RATES: &[&str] = &[
    "messages_per_second",
    "events_per_second",
    "ops_per_second",
    "requests_per_second",
];
/// `floor`: the least any implementation could do (chain verification: one BLAKE3 per event;
/// messaging and spawn: bare wasmtime making the same calls). `writer-floor`: the chain writer
/// alone appending a recorded run's events.
/// `direct`: the same work done without Theater (SQLite, `std::fs`, `std::process`).
/// `axum`: the same server written as a plain axum handler.
const PREFERRED_MODES: &[&str] = &[
    "recorded",
    "unrecorded",
    "erlang",
    "floor",
    "writer-floor",
    "direct",
    "axum",
];
const RATIOS: &[(&str, &str)] = &[
    ("recorded", "unrecorded"),
    ("recorded", "erlang"),
    ("recorded", "floor"),
    ("unrecorded", "floor"),
    ("recorded", "writer-floor"),
    ("recorded", "direct"),
    ("recorded", "axum"),
];

/// The figures of a sitting, as lines arrive.
#[derive(Default)]
pub struct Sitting {
    /// (bench, mode) in first-seen order, with the unit and every round's value.
    cells: Vec<((String, String), String, Vec<f64>)>,
    /// Lines that report a failure instead of a figure.
    pub failures: Vec<String>,
}

impl Sitting {
    /// Takes one output line: a JSON object with `bench`, `mode` and a figure counts; anything
    /// else is ignored. Returns whether it counted.
    pub fn add_line(&mut self, line: &str) -> bool {
        let Ok(serde_json::Value::Object(record)) = serde_json::from_str(line) else {
            return false;
        };
        let (Some(bench), Some(mode)) = (
            record.get("bench").and_then(|b| b.as_str()),
            record.get("mode").and_then(|m| m.as_str()),
        ) else {
            return false;
        };
        if let Some(why) = record.get("failed") {
            self.failures.push(format!("{bench} {mode} failed: {why}"));
            return false;
        }
        let named = record.get("figure").and_then(|f| f.as_str());
        let figure = named
            .into_iter()
            .chain(FIGURES.iter().copied())
            .find_map(|key| Some((key, record.get(key)?.as_f64()?)));
        let Some((unit, value)) = figure else {
            return false;
        };
        let key = (bench.to_owned(), mode.to_owned());
        match self.cells.iter_mut().find(|(k, _, _)| *k == key) {
            Some((_, _, values)) => values.push(value),
            None => self.cells.push((key, unit.to_owned(), vec![value])),
        }
        true
    }

    /// Whether any figure counted.
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// The Markdown table of medians and ratios.
    pub fn table(&self) -> String {
        let mut benches: Vec<&str> = Vec::new();
        let mut seen: Vec<&str> = Vec::new();
        let mut medians: HashMap<(&str, &str), (&str, f64)> = HashMap::new();
        let mut rounds = (usize::MAX, 0);
        for ((bench, mode), unit, values) in &self.cells {
            if !benches.contains(&bench.as_str()) {
                benches.push(bench);
            }
            if !seen.contains(&mode.as_str()) {
                seen.push(mode);
            }
            medians.insert((bench, mode), (unit, median(values)));
            rounds = (rounds.0.min(values.len()), rounds.1.max(values.len()));
        }
        let mut modes: Vec<&str> = PREFERRED_MODES
            .iter()
            .copied()
            .filter(|m| seen.contains(m))
            .collect();
        modes.extend(seen.iter().filter(|m| !PREFERRED_MODES.contains(m)));
        let ratios: Vec<(&str, &str)> = RATIOS
            .iter()
            .copied()
            .filter(|(a, b)| {
                benches.iter().any(|bench| {
                    medians.contains_key(&(bench, a)) && medians.contains_key(&(bench, b))
                })
            })
            .collect();

        let mut header = vec!["bench".to_owned(), "unit".to_owned()];
        header.extend(modes.iter().map(|m| m.to_string()));
        header.extend(ratios.iter().map(|(a, b)| format!("{a} ÷ {b}")));
        let mut out = format!("| {} |\n|", header.join(" | "));
        out += &"---|".repeat(2);
        out += &"---:|".repeat(header.len() - 2);
        out.push('\n');
        for bench in &benches {
            let unit = modes
                .iter()
                .find_map(|m| medians.get(&(*bench, *m)))
                .map_or("", |(unit, _)| *unit);
            let mut row = vec![bench.to_string(), unit.to_owned()];
            row.extend(modes.iter().map(|m| {
                medians
                    .get(&(*bench, *m))
                    .map_or(String::new(), |(_, v)| short(*v))
            }));
            for (a, b) in &ratios {
                let r = match (medians.get(&(*bench, *a)), medians.get(&(*bench, *b))) {
                    // A ratio only means something when both figures are in the same unit.
                    (Some((ua, va)), Some((ub, vb))) if ua == ub => ratio(ua, *va, *vb),
                    _ => None,
                };
                row.push(r.map_or(String::new(), |r| format!("{}×", significant(r))));
            }
            out += &format!("| {} |\n", row.join(" | "));
        }
        let count = if rounds.0 == rounds.1 {
            rounds.0.to_string()
        } else {
            format!("{}–{}", rounds.0, rounds.1)
        };
        let plural = if rounds.1 == 1 { "" } else { "s" };
        out +=
            &format!("\nMedians of {count} round{plural}; ratios above 1 mean Theater is slower.");
        out
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

/// Above 1 when `recorded` is worse: slower for a time, lower for a rate.
fn ratio(unit: &str, recorded: f64, other: f64) -> Option<f64> {
    let (num, den) = if RATES.contains(&unit) {
        (other, recorded)
    } else {
        (recorded, other)
    };
    (den != 0.0).then(|| num / den)
}

/// Three significant figures; big numbers whole, with thousands separators.
fn short(x: f64) -> String {
    if x.abs() < 1000.0 {
        return significant(x);
    }
    let rounded: f64 = format!("{x:.2e}").parse().unwrap_or(x);
    let digits = format!("{:.0}", rounded.abs());
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    if x < 0.0 {
        format!("-{grouped}")
    } else {
        grouped
    }
}

/// Three significant figures, without trailing zeros (as Python's `{:.3g}`, for |x| < 1000).
fn significant(x: f64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    let decimals = (2 - x.abs().log10().floor() as i32).max(0) as usize;
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_ratios_and_failures_make_the_table() {
        let mut sitting = Sitting::default();
        for line in [
            r#"{"bench":"ping-pong-request","mode":"recorded","round_trip_us":10.0}"#,
            r#"{"bench":"ping-pong-request","mode":"recorded","round_trip_us":12.0}"#,
            r#"{"bench":"ping-pong-request","mode":"recorded","round_trip_us":30.0}"#,
            r#"{"bench":"ping-pong-request","mode":"erlang","round_trip_us":0.8}"#,
            r#"{"bench":"counting","mode":"recorded","messages_per_second":200000}"#,
            r#"{"bench":"counting","mode":"erlang","messages_per_second":4800000}"#,
        ] {
            assert!(sitting.add_line(line), "{line}");
        }
        assert!(!sitting.add_line("compiling..."));
        assert!(
            !sitting
                .add_line(r#"{"bench":"skynet","mode":"recorded","seconds":3,"failed":"refused"}"#)
        );
        assert_eq!(sitting.failures.len(), 1);
        let table = sitting.table();
        // The median of 10, 12 and 30, and ratios oriented so that above 1 is slower.
        assert!(
            table.contains("| ping-pong-request | round_trip_us | 12 | 0.8 | 15× |"),
            "{table}"
        );
        assert!(
            table.contains("| counting | messages_per_second | 200,000 | 4,800,000 | 24× |"),
            "{table}"
        );
        assert!(table.contains("Medians of 1–3 rounds"), "{table}");
    }

    #[test]
    fn figures_read_as_three_significant_digits() {
        assert_eq!(significant(0.875), "0.875");
        assert_eq!(significant(10.84), "10.8");
        assert_eq!(significant(2.0), "2");
        assert_eq!(short(172_345.0), "172,000");
        assert_eq!(short(4_770_000.0), "4,770,000");
    }
}
