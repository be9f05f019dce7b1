//! The authors' LIDC folds, bit for bit: numpy's legacy `np.random.seed` +
//! `np.random.shuffle`, then sklearn's `KFold(n_splits, shuffle=False)`.
//!
//! D-Persona (and MedicalMatting before it) shuffles an index list with
//! `np.random.seed(1337); np.random.shuffle(...)` and cuts it into 4 contiguous chunks; the
//! chunk an item falls in is the fold it is tested in. Reproducing the folds means
//! reproducing numpy's MT19937 exactly, which is small enough to do here (tested against
//! numpy and sklearn in `ingest/tests/lidc_pickle.rs`) rather than shipping index lists.

/// Which unit the authors' protocol shuffles and cuts into folds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SplitUnit {
    /// Items (images): what the paper's numbers used (the patient-level code was dead
    /// at the time; slices of one patient can be in train and test).
    Image,
    /// Patients (`series_uid` before the first `_`), in first-seen order: the authors'
    /// later fix.
    Patient,
}

impl SplitUnit {
    pub fn name(self) -> &'static str {
        match self {
            SplitUnit::Image => "image",
            SplitUnit::Patient => "patient",
        }
    }
}

/// numpy's legacy `RandomState` generator (MT19937).
#[derive(Clone)]
pub struct Mt19937 {
    state: [u32; 624],
    pos: usize,
}

impl Mt19937 {
    /// `np.random.seed(seed)` for an integer seed: numpy's `_legacy_seeding` calls
    /// `mt19937_seed`, Matsumoto and Nishimura's `init_genrand` (Knuth's multiplier
    /// 1812433253), leaving the position at the end so the first draw regenerates.
    pub fn new(seed: u32) -> Self {
        let mut state = [0u32; 624];
        state[0] = seed;
        for i in 1..624 {
            let prev = state[i - 1];
            state[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        Mt19937 { state, pos: 624 }
    }

    fn generate(&mut self) {
        const UPPER: u32 = 0x8000_0000;
        const LOWER: u32 = 0x7fff_ffff;
        const MATRIX_A: u32 = 0x9908_b0df;
        for i in 0..624 {
            let y = (self.state[i] & UPPER) | (self.state[(i + 1) % 624] & LOWER);
            let mut v = self.state[(i + 397) % 624] ^ (y >> 1);
            if y & 1 != 0 {
                v ^= MATRIX_A;
            }
            self.state[i] = v;
        }
        self.pos = 0;
    }

    /// One 32-bit draw (`genrand_int32`, tempered).
    pub fn next_u32(&mut self) -> u32 {
        if self.pos >= 624 {
            self.generate();
        }
        let mut y = self.state[self.pos];
        self.pos += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// numpy's `next_uint64` for MT19937: two draws, the first in the high half.
    pub fn next_u64(&mut self) -> u64 {
        let hi = u64::from(self.next_u32());
        (hi << 32) | u64::from(self.next_u32())
    }

    /// numpy's legacy `random_interval(max)`: uniform in `0..=max` by masked rejection
    /// (mask = every bit up to max's highest), 32-bit draws unless max needs 64.
    pub fn interval(&mut self, max: u64) -> u64 {
        if max == 0 {
            return 0;
        }
        let mut mask = max;
        for s in [1, 2, 4, 8, 16, 32] {
            mask |= mask >> s;
        }
        loop {
            let v = if max <= 0xffff_ffff {
                u64::from(self.next_u32()) & mask
            } else {
                self.next_u64() & mask
            };
            if v <= max {
                return v;
            }
        }
    }

    /// `np.random.shuffle(x)` (legacy): for i from n-1 down to 1, swap x[i] with
    /// x[random_interval(i)].
    pub fn shuffle<T>(&mut self, x: &mut [T]) {
        for i in (1..x.len()).rev() {
            let j = self.interval(i as u64) as usize;
            x.swap(i, j);
        }
    }
}

/// sklearn `KFold(k, shuffle=False)` over `order`: fold f tests the f-th contiguous chunk;
/// the first `n mod k` chunks are one longer. Returns each position's fold. With fewer
/// than k units sklearn refuses; here the first folds get one unit each and the others
/// none.
pub fn kfold_of_positions(n: usize, k: usize) -> Vec<u32> {
    let mut out = Vec::with_capacity(n);
    if k == 0 {
        return out;
    }
    for f in 0..k {
        let size = n / k + usize::from(f < n % k);
        out.extend(std::iter::repeat_n(f as u32, size));
    }
    out
}

/// Fold of every item (in the pickle's order) under the authors' protocol. `patients[i]`
/// is item i's patient id (used by [`SplitUnit::Patient`] only).
pub fn authors_folds(patients: &[String], unit: SplitUnit, k: usize, seed: u32) -> Vec<u32> {
    let mut rng = Mt19937::new(seed);
    match unit {
        SplitUnit::Image => {
            let mut order: Vec<usize> = (0..patients.len()).collect();
            rng.shuffle(&mut order);
            let by_pos = kfold_of_positions(order.len(), k);
            let mut fold = vec![0u32; order.len()];
            for (pos, &item) in order.iter().enumerate() {
                fold[item] = by_pos[pos];
            }
            fold
        }
        SplitUnit::Patient => {
            let mut seen = std::collections::HashMap::new();
            let mut ids: Vec<&str> = Vec::new();
            for p in patients {
                seen.entry(p.as_str()).or_insert_with(|| {
                    ids.push(p.as_str());
                    ids.len() - 1
                });
            }
            let mut order: Vec<usize> = (0..ids.len()).collect();
            rng.shuffle(&mut order);
            let by_pos = kfold_of_positions(order.len(), k);
            let mut patient_fold = vec![0u32; ids.len()];
            for (pos, &p) in order.iter().enumerate() {
                patient_fold[p] = by_pos[pos];
            }
            patients
                .iter()
                .map(|p| seen.get(p.as_str()).map_or(0, |&i| patient_fold[i]))
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// init_genrand(5489)'s first outputs, as Matsumoto's reference `mt19937ar` and
    /// `np.random.RandomState(5489).randint(0, 2**32, size=2, dtype=np.uint64)` give them.
    #[test]
    fn mt19937_reference_output() {
        let mut r = Mt19937::new(5489);
        assert_eq!(r.next_u32(), 3_499_211_612);
        assert_eq!(r.next_u32(), 581_869_302);
    }

    #[test]
    fn kfold_chunks_like_sklearn() {
        assert_eq!(
            kfold_of_positions(10, 4),
            vec![0, 0, 0, 1, 1, 1, 2, 2, 3, 3]
        );
        assert_eq!(kfold_of_positions(3, 4), vec![0, 1, 2]);
    }
}
