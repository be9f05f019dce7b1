//! Epoch iteration: determinism across worker counts, per-epoch shuffles, batch sizes.
mod loader_support;

use loader_support::{aligned_spec, write_dataset};
use schemas::manifest::RaterOrder;
use train::batch::Batch;
use train::loader::{AugmentKind, Dataset, Loader, LoaderConfig, Selection};

fn loader(
    m: &std::path::Path,
    threads: usize,
    augment: AugmentKind,
    batch_size: usize,
    prefetch: usize,
) -> Loader {
    let ds = Dataset::open(m, &Selection::all()).unwrap();
    let cfg = LoaderConfig {
        batch_size,
        threads,
        prefetch,
        augment,
        seed: 1234,
        ..LoaderConfig::default()
    };
    Loader::new(ds, cfg).unwrap()
}

fn epoch(l: &Loader, e: u64) -> Vec<Batch> {
    l.epoch(e).collect::<Result<Vec<_>, _>>().unwrap()
}

/// Bit patterns of every float field, then the present flags, so equality is exact.
fn bits(b: &Batch) -> (Vec<u32>, Vec<bool>) {
    let fields = [&b.images, &b.masks, &b.union, &b.intersection];
    let f = fields
        .iter()
        .flat_map(|v| v.iter().map(|x| x.to_bits()))
        .collect();
    (f, b.present.clone())
}

#[test]
fn same_batches_whatever_the_worker_count() {
    let dir = tempfile::tempdir().unwrap();
    let m = write_dataset(
        dir.path(),
        &aligned_spec(24, 2, 4, RaterOrder::AreaRank, vec![3]),
    );
    for augment in [AugmentKind::Lidc, AugmentKind::Npc] {
        let one = loader(&m, 1, augment, 5, 1);
        let three = loader(&m, 3, augment, 5, 3);
        for e in 0..2 {
            let (a, b) = (epoch(&one, e), epoch(&three, e));
            assert_eq!(a.len(), b.len());
            for (x, y) in a.iter().zip(&b) {
                assert_eq!(x.rows, y.rows, "{augment:?} epoch {e}");
                assert!(
                    bits(x) == bits(y),
                    "{augment:?} epoch {e}: batch contents differ between 1 and 3 workers"
                );
            }
        }
        // Augmentation really happened: some image differs from the stored one.
        let stored = loader(&m, 1, AugmentKind::None, 5, 1);
        let plain = stored.sample(0, 0);
        let aug = one.sample(0, 0);
        assert_eq!(plain.id, aug.id);
        let changed = (0..12).any(|p| one.sample(0, p).image != stored.sample(0, p).image);
        assert!(changed, "{augment:?} left every image unchanged");
        // `sample` agrees with what the epoch iterator served.
        let first = &epoch(&one, 0)[0];
        let hw = 24 * 24;
        assert_eq!(first.images[..2 * hw], aug.image[..]);
    }
}

#[test]
fn each_epoch_is_a_new_permutation_of_all_rows() {
    let dir = tempfile::tempdir().unwrap();
    let m = write_dataset(
        dir.path(),
        &aligned_spec(16, 1, 4, RaterOrder::Identity, vec![]),
    );
    let l = loader(&m, 2, AugmentKind::None, 5, 2);
    let rows = |e| {
        epoch(&l, e)
            .into_iter()
            .flat_map(|b| b.rows)
            .collect::<Vec<_>>()
    };
    let (e0, e1, e0_again) = (rows(0), rows(1), rows(0));
    assert_eq!(e0.len(), 12);
    assert_ne!(e0, e1, "epochs 0 and 1 visit rows in the same order");
    assert_eq!(e0, e0_again, "the same epoch must repeat its order");
    let sorted = |mut v: Vec<train::batch::RowId>| {
        v.sort_by(|a, b| (&a.study_id, a.slice_index).cmp(&(&b.study_id, b.slice_index)));
        v
    };
    assert_eq!(
        sorted(e0.clone()),
        sorted(e1.clone()),
        "an epoch must visit every row once"
    );
    let mut dedup = sorted(e0);
    dedup.dedup();
    assert_eq!(dedup.len(), 12);
    // Without shuffling, dataset order.
    let ds = Dataset::open(&m, &Selection::all()).unwrap();
    let first: Vec<_> = (0..ds.len()).map(|i| ds.get(i).id.clone()).collect();
    let fixed = Loader::new(ds, LoaderConfig::eval(5)).unwrap();
    let served: Vec<_> = fixed.epoch(3).flat_map(|b| b.unwrap().rows).collect();
    assert_eq!(served, first);
}

#[test]
fn last_partial_batch_is_kept_and_resume_matches() {
    let dir = tempfile::tempdir().unwrap();
    let m = write_dataset(
        dir.path(),
        &aligned_spec(16, 1, 4, RaterOrder::Identity, vec![]),
    );
    let l = loader(&m, 2, AugmentKind::Lidc, 5, 2);
    assert_eq!(l.batches_per_epoch(), 3);
    let it = l.epoch(0);
    assert_eq!(it.len(), 3);
    let all = it.collect::<Result<Vec<_>, _>>().unwrap();
    let sizes: Vec<usize> = all.iter().map(|b| b.b).collect();
    assert_eq!(sizes, vec![5, 5, 2]);
    for b in &all {
        assert_eq!(b.images.len(), b.b * b.c * b.h * b.w);
        assert_eq!(b.masks.len(), b.b * b.r * b.h * b.w);
        assert_eq!(b.union.len(), b.b * b.h * b.w);
        assert_eq!(b.present.len(), b.b * b.r);
    }
    let tail = l.epoch_from(0, 1).collect::<Result<Vec<_>, _>>().unwrap();
    assert_eq!(tail, all[1..].to_vec());
    // Dropping an iterator mid-epoch stops its producer (this returns instead of hanging).
    let mut it = l.epoch(5);
    it.next().unwrap().unwrap();
    drop(it);
}

#[test]
fn tensors_have_the_documented_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let m = write_dataset(
        dir.path(),
        &aligned_spec(16, 3, 4, RaterOrder::Identity, vec![2]),
    );
    let l = loader(&m, 1, AugmentKind::None, 4, 1);
    let b = l.epoch(0).next().unwrap().unwrap();
    let t = b.tensors(tch::Device::Cpu, true);
    assert_eq!(t.images.size(), vec![4, 3, 16, 16]);
    assert_eq!(t.masks.size(), vec![4, 4, 16, 16]);
    assert_eq!(t.present.size(), vec![4, 4]);
    assert_eq!(t.union.size(), vec![4, 1, 16, 16]);
    assert_eq!(t.present.kind(), tch::Kind::Bool);
    // Row 0's present flags survive the round trip; rater 2 is missing.
    let flags: Vec<bool> = Vec::<bool>::try_from(t.present.get(0)).unwrap();
    assert_eq!(flags, vec![true, true, false, true]);
    let u: Vec<f32> = Vec::<f32>::try_from(t.union.flatten(0, -1)).unwrap();
    assert_eq!(u, b.union);
}
