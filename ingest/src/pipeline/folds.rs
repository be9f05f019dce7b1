//! Patient-level cross-validation folds and the train/val/test split.
//!
//! Every study of a patient gets the same fold and the same split, so no patient's slices
//! leak between the sides of a split (the paper-time LIDC code split at image level; see
//! method.md §1.3 and §6; we do not reproduce that leak).
//!
//! The exact rule, given the patient ids, `k` folds and a seed:
//! 1. Take the distinct patient ids sorted in byte order (so the result does not depend on
//!    the order the filesystem listed the studies in, nor on which studies were resumed).
//! 2. Folds: shuffle that list with [`shuffle`] driven by `ChaCha8Rng::seed_from_u64(seed)`
//!    (stream 0), then cut it into `k` contiguous chunks the way scikit-learn's
//!    `KFold(shuffle=False)` does: with `n` patients the first `n % k` folds get
//!    `n / k + 1` patients and the others `n / k`. Fold f's chunk is its held-out set.
//! 3. Split: shuffle the sorted list again, independently, with the same seed on ChaCha
//!    stream 1; the first `round(test_fraction * n)` patients are `test`, the next
//!    `round(val_fraction * n)` are `val`, the rest `train`. If rounding would leave no
//!    training patient, `val` and then `test` give one patient back until one is left.
use std::collections::BTreeMap;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The split names written to the manifest's `split` column.
pub const TRAIN: &str = "train";
pub const VAL: &str = "val";
pub const TEST: &str = "test";

/// Fold and split of one patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assignment {
    pub fold: u32,
    pub split: &'static str,
}

/// Why an assignment cannot be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FoldError {
    #[error("--folds must be at least 1")]
    NoFolds,
    #[error("--val-fraction {val} and --test-fraction {test} must each be in [0, 1) and sum to less than 1")]
    BadFractions { val: f64, test: f64 },
}

/// Checks the fractions alone (before any work is done).
pub fn check_fractions(val: f64, test: f64) -> Result<(), FoldError> {
    let ok = |f: f64| (0.0..1.0).contains(&f);
    if ok(val) && ok(test) && val + test < 1.0 {
        Ok(())
    } else {
        Err(FoldError::BadFractions { val, test })
    }
}

/// Fisher–Yates shuffle with `j = next_u64() % (i + 1)`: spelled out rather than taken from
/// `rand::seq` so the permutation is fixed by this code alone (rand does not promise that
/// its shuffle stays the same across releases). The modulo bias is below 2^-40 for any
/// realistic patient count.
pub fn shuffle<T>(items: &mut [T], rng: &mut ChaCha8Rng) {
    for i in (1..items.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

/// The warning for a dataset with fewer distinct patients than folds, if it has.
pub fn fewer_patients_than_folds(patients: usize, k: u32) -> Option<String> {
    (patients < k as usize).then(|| {
        format!(
            "{patients} patient(s) for {k} folds: folds {patients}..{} hold no patient (training \
             with --fold on them has nothing to hold out); ingest with --folds {} or fewer to \
             use them all",
            k - 1,
            patients.max(1)
        )
    })
}

/// Assigns every patient in `patients` (any order, duplicates allowed) a fold and a split.
pub fn assign<'a>(
    patients: impl IntoIterator<Item = &'a str>,
    k: u32,
    seed: u64,
    val_fraction: f64,
    test_fraction: f64,
) -> Result<BTreeMap<String, Assignment>, FoldError> {
    if k == 0 {
        return Err(FoldError::NoFolds);
    }
    check_fractions(val_fraction, test_fraction)?;
    let sorted: Vec<String> = patients
        .into_iter()
        .map(str::to_string)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    // Fewer patients than folds is allowed (a user trying three scans first must get
    // shards): KFold's chunking then gives the first `n` folds one patient each and leaves
    // the rest empty; the pipeline warns ([`fewer_patients_than_folds`]).
    let n = sorted.len();

    let mut fold_order = sorted.clone();
    shuffle(&mut fold_order, &mut ChaCha8Rng::seed_from_u64(seed));
    let mut fold_of = BTreeMap::new();
    let (base, extra) = (n / k as usize, n % k as usize);
    let mut pos = 0;
    for f in 0..k as usize {
        let size = base + usize::from(f < extra);
        for p in &fold_order[pos..pos + size] {
            fold_of.insert(p.clone(), f as u32);
        }
        pos += size;
    }

    let mut split_order = sorted;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(1);
    shuffle(&mut split_order, &mut rng);
    let mut n_test = (test_fraction * n as f64).round() as usize;
    let mut n_val = (val_fraction * n as f64).round() as usize;
    while n > 0 && n_test + n_val >= n {
        if n_val > 0 {
            n_val -= 1;
        } else {
            n_test -= 1;
        }
    }
    Ok(split_order
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let split = if i < n_test {
                TEST
            } else if i < n_test + n_val {
                VAL
            } else {
                TRAIN
            };
            let fold = fold_of[&p];
            (p, Assignment { fold, split })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("P{i:03}")).collect()
    }

    #[test]
    fn fold_sizes_follow_kfold() {
        let p = ids(10);
        let a = assign(p.iter().map(String::as_str), 4, 1337, 0.0, 0.0).unwrap();
        let mut sizes = [0; 4];
        for v in a.values() {
            sizes[v.fold as usize] += 1;
        }
        // 10 = 3 + 3 + 2 + 2: the first 10 % 4 = 2 folds get one extra.
        assert_eq!(sizes, [3, 3, 2, 2]);
        assert!(a.values().all(|v| v.split == TRAIN));
    }

    #[test]
    fn independent_of_input_order_and_seeded() {
        let p = ids(20);
        let mut rev = p.clone();
        rev.reverse();
        let a = assign(p.iter().map(String::as_str), 5, 7, 0.1, 0.2).unwrap();
        let b = assign(rev.iter().map(String::as_str), 5, 7, 0.1, 0.2).unwrap();
        assert_eq!(a, b);
        let c = assign(p.iter().map(String::as_str), 5, 8, 0.1, 0.2).unwrap();
        assert_ne!(a, c, "another seed must give another assignment");
        let count = |s: &str| a.values().filter(|v| v.split == s).count();
        assert_eq!((count(TEST), count(VAL), count(TRAIN)), (4, 2, 14));
    }

    #[test]
    fn rounding_leaves_one_training_patient() {
        let p = ids(2);
        let a = assign(p.iter().map(String::as_str), 1, 1, 0.3, 0.3).unwrap();
        assert_eq!(a.values().filter(|v| v.split == TRAIN).count(), 1);
    }

    #[test]
    fn shuffle_is_a_permutation() {
        let mut v: Vec<u32> = (0..100).collect();
        shuffle(&mut v, &mut ChaCha8Rng::seed_from_u64(3));
        assert_ne!(v, (0..100).collect::<Vec<_>>());
        v.sort();
        assert_eq!(v, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn fewer_patients_than_folds_fill_the_first_folds() {
        let p = ids(3);
        let a = assign(p.iter().map(String::as_str), 4, 1, 0.0, 0.0).unwrap();
        let mut folds: Vec<u32> = a.values().map(|v| v.fold).collect();
        folds.sort();
        assert_eq!(folds, [0, 1, 2]);
        let w = fewer_patients_than_folds(3, 4).expect("a warning");
        assert!(w.contains("folds 3..3 hold no patient"), "{w}");
        assert_eq!(fewer_patients_than_folds(4, 4), None);
    }

    #[test]
    fn bad_options_are_errors() {
        assert_eq!(
            assign(["a"].into_iter(), 0, 1, 0.0, 0.0),
            Err(FoldError::NoFolds)
        );
        assert!(check_fractions(0.5, 0.5).is_err());
        assert!(check_fractions(-0.1, 0.0).is_err());
    }
}
