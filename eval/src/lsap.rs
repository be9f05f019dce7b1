//! Rectangular linear sum assignment (minimum total cost), a line-by-line port of SciPy's
//! `linear_sum_assignment` (scipy/optimize/rectangular_lsap: Crouse's shortest augmenting
//! path, "On implementing 2D rectangular assignment algorithms", IEEE TAES 2016).
//!
//! Porting SciPy's algorithm rather than using a generic Hungarian solver keeps the
//! tie-breaking of the authors' evaluation (which calls SciPy): with ties (several empty
//! predictions against an empty rater) the matched TOTAL never depends on tie-breaking,
//! but the per-rater matched values can (method.md §5.5).

/// Why an assignment could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LsapError {
    #[error("cost matrix has {got} entries, expected {rows} x {cols}")]
    Shape {
        rows: usize,
        cols: usize,
        got: usize,
    },
    #[error("cost matrix contains NaN or -inf")]
    InvalidEntry,
    #[error("cost matrix is infeasible")]
    Infeasible,
}

/// Minimum-cost assignment on a row-major `[rows, cols]` cost matrix. Returns
/// `min(rows, cols)` pairs `(row, col)` sorted by row, exactly as SciPy returns them
/// (for a tall matrix the problem is transposed and each column is assigned once).
pub fn linear_sum_assignment(
    cost: &[f64],
    rows: usize,
    cols: usize,
) -> Result<Vec<(usize, usize)>, LsapError> {
    if cost.len() != rows * cols {
        return Err(LsapError::Shape {
            rows,
            cols,
            got: cost.len(),
        });
    }
    if rows == 0 || cols == 0 {
        return Ok(Vec::new());
    }
    if cost.iter().any(|c| c.is_nan() || *c == f64::NEG_INFINITY) {
        return Err(LsapError::InvalidEntry);
    }
    let transpose = cols < rows;
    let (nr, nc, c): (usize, usize, Vec<f64>) = if transpose {
        let mut t = vec![0.0; rows * cols];
        for i in 0..rows {
            for j in 0..cols {
                t[j * rows + i] = cost[i * cols + j];
            }
        }
        (cols, rows, t)
    } else {
        (rows, cols, cost.to_vec())
    };

    let mut u = vec![0.0f64; nr];
    let mut v = vec![0.0f64; nc];
    let mut shortest = vec![f64::INFINITY; nc];
    let mut path = vec![usize::MAX; nc];
    let mut col4row = vec![usize::MAX; nr];
    let mut row4col = vec![usize::MAX; nc];
    let mut sr = vec![false; nr];
    let mut sc = vec![false; nc];
    let mut remaining = vec![0usize; nc];

    for cur_row in 0..nr {
        // --- augmenting_path ---
        let mut min_val = 0.0f64;
        let mut num_remaining = nc;
        for (it, r) in remaining.iter_mut().enumerate() {
            // Reverse order: a constant cost matrix gives the identity (SciPy #11602).
            *r = nc - it - 1;
        }
        sr.fill(false);
        sc.fill(false);
        shortest.fill(f64::INFINITY);
        let mut i = cur_row;
        let sink = loop {
            let mut index = usize::MAX;
            let mut lowest = f64::INFINITY;
            sr[i] = true;
            for (it, &j) in remaining[..num_remaining].iter().enumerate() {
                let r = min_val + c[i * nc + j] - u[i] - v[j];
                if r < shortest[j] {
                    path[j] = i;
                    shortest[j] = r;
                }
                // Among equal minima prefer one that is a free column (a new sink).
                if shortest[j] < lowest || (shortest[j] == lowest && row4col[j] == usize::MAX) {
                    lowest = shortest[j];
                    index = it;
                }
            }
            min_val = lowest;
            if min_val == f64::INFINITY {
                return Err(LsapError::Infeasible);
            }
            let j = remaining[index];
            sc[j] = true;
            num_remaining -= 1;
            remaining[index] = remaining[num_remaining];
            if row4col[j] == usize::MAX {
                break j;
            }
            i = row4col[j];
        };
        // --- update dual variables ---
        u[cur_row] += min_val;
        for r in 0..nr {
            if sr[r] && r != cur_row {
                u[r] += min_val - shortest[col4row[r]];
            }
        }
        for j in 0..nc {
            if sc[j] {
                v[j] -= min_val - shortest[j];
            }
        }
        // --- augment the previous solution ---
        let mut j = sink;
        loop {
            let r = path[j];
            row4col[j] = r;
            std::mem::swap(&mut col4row[r], &mut j);
            if r == cur_row {
                break;
            }
        }
    }

    let mut pairs: Vec<(usize, usize)> = if transpose {
        // col4row maps (original) columns to (original) rows.
        col4row
            .iter()
            .enumerate()
            .map(|(col, &row)| (row, col))
            .collect()
    } else {
        col4row
            .iter()
            .enumerate()
            .map(|(row, &col)| (row, col))
            .collect()
    };
    pairs.sort_unstable();
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute_force_min(cost: &[f64], rows: usize, cols: usize) -> f64 {
        // Every injective map rows -> cols (rows <= cols).
        fn rec(
            r: usize,
            rows: usize,
            cols: usize,
            used: &mut Vec<bool>,
            cost: &[f64],
            acc: f64,
            best: &mut f64,
        ) {
            if r == rows {
                *best = best.min(acc);
                return;
            }
            for c in 0..cols {
                if !used[c] {
                    used[c] = true;
                    rec(
                        r + 1,
                        rows,
                        cols,
                        used,
                        cost,
                        acc + cost[r * cols + c],
                        best,
                    );
                    used[c] = false;
                }
            }
        }
        let mut best = f64::INFINITY;
        rec(0, rows, cols, &mut vec![false; cols], cost, 0.0, &mut best);
        best
    }

    #[test]
    fn matches_brute_force_on_small_rectangles() {
        let mut state = 12345u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) % 7) as f64 / 7.0 // few distinct values: many ties
        };
        for rows in 1..=4 {
            for cols in rows..=6 {
                for _ in 0..20 {
                    let cost: Vec<f64> = (0..rows * cols).map(|_| next()).collect();
                    let pairs = linear_sum_assignment(&cost, rows, cols).unwrap();
                    assert_eq!(pairs.len(), rows);
                    let total: f64 = pairs.iter().map(|&(r, c)| cost[r * cols + c]).sum();
                    assert!((total - brute_force_min(&cost, rows, cols)).abs() < 1e-12);
                    let mut cs: Vec<_> = pairs.iter().map(|p| p.1).collect();
                    cs.sort();
                    cs.dedup();
                    assert_eq!(cs.len(), rows, "columns used once");
                }
            }
        }
    }

    #[test]
    fn constant_matrix_gives_identity_like_scipy() {
        let pairs = linear_sum_assignment(&[1.0; 12], 3, 4).unwrap();
        assert_eq!(pairs, vec![(0, 0), (1, 1), (2, 2)]);
    }

    #[test]
    fn tall_matrix_assigns_each_column_once() {
        // 3 rows x 2 cols: rows 2 and 0 are the cheap ones.
        let cost = [0.1, 0.9, 0.9, 0.9, 0.9, 0.0];
        let pairs = linear_sum_assignment(&cost, 3, 2).unwrap();
        assert_eq!(pairs, vec![(0, 0), (2, 1)]);
    }
}
