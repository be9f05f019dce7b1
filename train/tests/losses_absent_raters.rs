//! `stage2.mask_absent_raters` on hand-built batches with an absent rater: the union and
//! intersection Stage I is given, its bound loss, and Stage II's Dice loss, with the flag off
//! (the authors: an absent rater is an empty mask) and on (absent raters left out), checked
//! against an independent numpy float64 reference (tests/py/absent_raters_reference.py).
use tch::{Device, Kind, Tensor};
use train::batch::{Batch, RowId};
use train::loader::sample::consensus;
use train::losses::{bound_loss_of_extremes, generalized_dice_loss, masked_generalized_dice_loss};

/// A batch of `b` rows, `r` raters, `h x w` slices from 0/1 masks `[B][R][H*W]`; union and
/// intersection over the present raters, as the loader computes them.
fn batch(masks: &[Vec<Vec<u8>>], present: &[Vec<bool>], h: usize, w: usize) -> Batch {
    let (b, r) = (masks.len(), masks[0].len());
    let mut flat_masks = Vec::new();
    let (mut union, mut intersection) = (Vec::new(), Vec::new());
    for (row, pres) in masks.iter().zip(present) {
        let bytes: Vec<u8> = row.iter().flatten().copied().collect();
        let (i, u) = consensus(&bytes, pres, h * w);
        intersection.extend(i);
        union.extend(u);
        flat_masks.extend(bytes.iter().map(|&v| v as f32));
    }
    Batch {
        images: vec![0.0; b * h * w],
        masks: flat_masks,
        present: present.iter().flatten().copied().collect(),
        intersection,
        union,
        target: None,
        b,
        c: 1,
        r,
        h,
        w,
        rows: (0..b)
            .map(|i| RowId {
                study_id: format!("S{i}"),
                target_id: "T1".into(),
                slice_index: 0,
            })
            .collect(),
    }
}

/// 3x3 masks written as rows of 0/1.
fn m(rows: [[u8; 3]; 3]) -> Vec<u8> {
    rows.iter().flatten().copied().collect()
}

#[test]
fn absent_raters_are_left_out_only_with_the_flag() {
    let empty = m([[0, 0, 0], [0, 0, 0], [0, 0, 0]]);
    // Case 0: row 0 read by all three raters; row 1: rater 2 absent (empty mask).
    let case0 = (
        vec![
            vec![
                m([[1, 1, 0], [1, 1, 0], [0, 0, 0]]),
                m([[0, 1, 1], [0, 1, 1], [0, 0, 0]]),
                m([[1, 1, 1], [1, 1, 1], [1, 1, 0]]),
            ],
            vec![
                m([[0, 0, 0], [0, 1, 1], [0, 1, 1]]),
                m([[0, 0, 0], [1, 1, 1], [0, 1, 0]]),
                empty.clone(),
            ],
        ],
        vec![vec![true, true, true], vec![true, true, false]],
    );
    // Case 1: rater 1 absent on both rows (its head has no present row in the batch) and
    // rater 0 absent on row 1.
    let case1 = (
        vec![
            vec![
                m([[1, 1, 1], [0, 1, 0], [0, 0, 0]]),
                empty.clone(),
                m([[1, 1, 0], [1, 1, 0], [1, 0, 0]]),
            ],
            vec![
                empty.clone(),
                empty.clone(),
                m([[0, 1, 1], [0, 1, 1], [0, 0, 1]]),
            ],
        ],
        vec![vec![true, false, true], vec![false, false, true]],
    );
    tch::manual_seed(5);
    let cpu = (Kind::Float, Device::Cpu);
    let mut named: Vec<(String, Tensor)> = Vec::new();
    for (i, (masks, present)) in [case0, case1].iter().enumerate() {
        let bt = batch(masks, present, 3, 3);
        let t = bt.tensors(Device::Cpu, false);
        let (b, r) = (bt.b as i64, bt.r as i64);
        let upper = Tensor::randn([b, 1, 3, 3], cpu) * 2.0;
        let lower = Tensor::randn([b, 1, 3, 3], cpu) * 2.0;
        let heads = Tensor::randn([b, r, 3, 3], cpu) * 2.0;
        for (flag, on) in [("off", false), ("on", true)] {
            let (union, inter) = t.stage1_consensus(on);
            let bound = bound_loss_of_extremes(&upper, &lower, &union, &inter);
            let stage2 = if on {
                masked_generalized_dice_loss(&heads, &t.masks, &t.present)
            } else {
                generalized_dice_loss(&heads, &t.masks)
            };
            named.push((format!("union_{flag}_{i}"), union));
            named.push((format!("inter_{flag}_{i}"), inter));
            named.push((format!("bound_{flag}_{i}"), bound.view([1])));
            named.push((format!("stage2_{flag}_{i}"), stage2.view([1])));
        }
        named.push((format!("masks_{i}"), t.masks.shallow_clone()));
        named.push((format!("present_{i}"), t.present.to_kind(Kind::Float)));
        named.push((format!("upper_{i}"), upper));
        named.push((format!("lower_{i}"), lower));
        named.push((format!("heads_{i}"), heads));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("absent_raters.safetensors");
    Tensor::write_safetensors(&named, &file).unwrap();
    let (ok, text) = testkit::run_script("absent_raters_reference.py", &[&file]);
    assert!(ok, "numpy reference disagrees:\n{text}");
}

/// With every rater present the masked loss is the authors' loss, value and gradient.
#[test]
fn masked_gdl_equals_gdl_when_everyone_is_present() {
    tch::manual_seed(9);
    let cpu = (Kind::Float, Device::Cpu);
    for c in [1, 4] {
        let mut logits = (Tensor::randn([3, c, 8, 8], cpu) * 2.0).set_requires_grad(true);
        let target = Tensor::rand([3, c, 8, 8], cpu).lt(0.4).to_kind(Kind::Float);
        let present = Tensor::ones([3, c], (Kind::Bool, Device::Cpu));
        let a = generalized_dice_loss(&logits, &target);
        a.backward();
        let ga = logits.grad().copy();
        logits.zero_grad();
        let b = masked_generalized_dice_loss(&logits, &target, &present);
        b.backward();
        let gb = logits.grad();
        assert!(
            (a.double_value(&[]) - b.double_value(&[])).abs() < 1e-7,
            "C={c}: {} vs {}",
            a.double_value(&[]),
            b.double_value(&[])
        );
        assert!(
            (&ga - &gb).abs().max().double_value(&[]) < 1e-7,
            "C={c}: gradients differ"
        );
    }
}

/// A head whose rater is absent on a row gets no gradient from that row.
#[test]
fn absent_rows_send_no_gradient_to_their_head() {
    tch::manual_seed(3);
    let cpu = (Kind::Float, Device::Cpu);
    let logits = (Tensor::randn([2, 2, 4, 4], cpu)).set_requires_grad(true);
    let target = Tensor::rand([2, 2, 4, 4], cpu).lt(0.5).to_kind(Kind::Float);
    let present = Tensor::from_slice(&[true, true, true, false]).view([2, 2]);
    masked_generalized_dice_loss(&logits, &target, &present).backward();
    let g = logits.grad();
    let absent = g.get(1).get(1).abs().sum(Kind::Float).double_value(&[]);
    let present_head = g.get(0).get(1).abs().sum(Kind::Float).double_value(&[]);
    assert_eq!(absent, 0.0);
    assert!(present_head > 0.0);
}
