//! Running means of the loss terms over one epoch, for the progress bar and `train.log`.

#[derive(Default)]
pub struct TermSums {
    names: Vec<&'static str>,
    sums: Vec<f64>,
    n: usize,
}

impl TermSums {
    /// Adds one admitted step's values (`total` first, then the method's terms).
    pub fn add(&mut self, values: &[(&'static str, f64)]) {
        if self.names.is_empty() {
            self.names = values.iter().map(|(n, _)| *n).collect();
            self.sums = vec![0.0; values.len()];
        }
        for (s, (_, v)) in self.sums.iter_mut().zip(values) {
            *s += v;
        }
        self.n += 1;
    }

    fn means(&self) -> impl Iterator<Item = (&'static str, f64)> + '_ {
        let n = self.n.max(1) as f64;
        self.names
            .iter()
            .zip(&self.sums)
            .map(move |(name, s)| (*name, s / n))
    }

    /// `total 0.1234 rec 0.0567 ...` for the epoch's log line.
    pub fn long(&self) -> String {
        if self.n == 0 {
            return "no finite step".into();
        }
        self.means()
            .map(|(n, v)| format!("{n} {v:.4}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The same with three decimals, for the progress bar.
    pub fn short(&self) -> String {
        self.means()
            .map(|(n, v)| format!("{n} {v:.3}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}
