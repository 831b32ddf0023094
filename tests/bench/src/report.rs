//! Collecting figures (median of runs, min, max) and printing them as a table.

/// One measured figure.
pub struct Figure {
    name: String,
    unit: String,
    config: String,
    values: Vec<f64>,
}

impl Figure {
    /// Median of the runs.
    pub fn median(&self) -> f64 {
        let mut v = self.values.clone();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n == 0 {
            f64::NAN
        } else if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    }
}

/// All figures of a bench run.
pub struct Report {
    /// Runs per figure.
    pub runs: usize,
    figures: Vec<Figure>,
    notes: Vec<String>,
    headlines: Vec<String>,
}

impl Report {
    /// An empty report.
    pub fn new(runs: usize) -> Self {
        Report {
            runs: runs.max(1),
            figures: Vec::new(),
            notes: Vec::new(),
            headlines: Vec::new(),
        }
    }

    /// Records a figure from its per-run values.
    pub fn add(&mut self, name: &str, unit: &str, config: &str, values: Vec<f64>) -> f64 {
        let figure = Figure {
            name: name.into(),
            unit: unit.into(),
            config: config.into(),
            values,
        };
        let median = figure.median();
        eprintln!("  {name}: {} {unit}", fmt(median));
        self.figures.push(figure);
        median
    }

    /// Adds a line under the table.
    pub fn note(&mut self, line: String) {
        eprintln!("  {line}");
        self.notes.push(line);
    }

    /// Adds a markdown block printed above the figure table (e.g. the peers' ratio table).
    pub fn headline(&mut self, block: String) {
        self.headlines.push(block);
    }

    /// Prints the machine description.
    pub fn machine(&mut self) {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| {
                c.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|s| s.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let mem = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .next()
                    .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_owned())
            })
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb / 1024 / 1024);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        self.notes.push(format!(
            "machine: {cpu}, {cores} cores, {mem} GiB, Linux {}",
            kernel.trim()
        ));
        self.notes.push(format!(
            "each figure: median of {} runs (min-max); SQLite WAL, synchronous=NORMAL unless the config says FULL",
            self.runs
        ));
    }

    /// Prints everything.
    pub fn print(&self) {
        for block in &self.headlines {
            println!();
            print!("{block}");
        }
        println!();
        println!("| figure | median | min - max | unit | configuration |");
        println!("|---|---:|---:|---|---|");
        for f in &self.figures {
            let min = f.values.iter().copied().fold(f64::INFINITY, f64::min);
            let max = f.values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            println!(
                "| {} | {} | {} - {} | {} | {} |",
                f.name,
                fmt(f.median()),
                fmt(min),
                fmt(max),
                f.unit,
                f.config
            );
        }
        println!();
        for n in &self.notes {
            println!("- {n}");
        }
    }
}

/// Three significant-ish digits, thousands grouped.
pub fn fmt(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    if v.abs() >= 100.0 {
        let s = format!("{:.0}", v);
        let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        format!("{sign}{out}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}
