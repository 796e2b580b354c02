//! The measurements: each printed as an `@@bench {json}` line as it comes, ratios of two,
//! and the `@@md` Markdown table at the end.

use serde::Serialize;

#[derive(Serialize, Clone)]
pub struct Stat {
    pub name: String,
    pub unit: &'static str,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub runs: usize,
}

impl Stat {
    pub fn of(name: &str, unit: &'static str, mut samples: Vec<f64>) -> Self {
        samples.sort_by(f64::total_cmp);
        let n = samples.len();
        let median = match n {
            0 => f64::NAN,
            _ if n % 2 == 1 => samples[n / 2],
            _ => (samples[n / 2 - 1] + samples[n / 2]) / 2.0,
        };
        Stat {
            name: name.to_string(),
            unit,
            median,
            min: samples.first().copied().unwrap_or(f64::NAN),
            max: samples.last().copied().unwrap_or(f64::NAN),
            runs: n,
        }
    }
}

/// The measurements so far, printed as they come.
#[derive(Default)]
pub struct Report {
    stats: Vec<Stat>,
}

impl Report {
    pub fn add(&mut self, stat: Stat) {
        println!(
            "@@bench {}",
            serde_json::to_string(&stat).unwrap_or_default()
        );
        self.stats.push(stat);
    }

    fn get(&self, name: &str) -> Option<&Stat> {
        self.stats.iter().find(|s| s.name == name)
    }

    /// `num / den` of two measurements: median over median, and the spread from the extremes.
    pub fn ratio(&mut self, name: &str, num: &str, den: &str) {
        let (Some(a), Some(b)) = (self.get(num).cloned(), self.get(den).cloned()) else {
            println!("# ratio {name}: {num} or {den} missing");
            return;
        };
        let stat = Stat {
            name: name.to_string(),
            unit: "ratio",
            median: a.median / b.median,
            min: a.min / b.max,
            max: a.max / b.min,
            runs: a.runs.min(b.runs),
        };
        self.add(stat);
    }

    /// A measurement reported as a ratio of its own (a count, say).
    pub fn alias(&mut self, name: &str, of: &str) {
        if let Some(stat) = self.get(of).cloned() {
            self.add(Stat {
                name: name.to_string(),
                ..stat
            });
        }
    }

    pub fn markdown(&self) {
        println!("@@md | measurement | unit | median | min | max | runs |");
        println!("@@md | --- | --- | ---: | ---: | ---: | ---: |");
        for s in &self.stats {
            println!(
                "@@md | `{}` | {} | {} | {} | {} | {} |",
                s.name,
                s.unit,
                fmt_num(s.median),
                fmt_num(s.min),
                fmt_num(s.max),
                s.runs
            );
        }
    }
}

fn fmt_num(x: f64) -> String {
    if x.is_nan() {
        "–".into()
    } else if x.abs() >= 1000.0 || x == x.trunc() {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}
