//! The training configuration: one struct, read from a preset (TOML embedded in
//! `data_manifests`) with an optional user TOML merged over it key by key.
//!
//! Every struct denies unknown fields, so a misspelt key in a user's `--config` file is an
//! error naming the key, never a silently ignored setting.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::loader::AugmentKind;
use crate::losses::{ReconFrom, Stage1Options};
use crate::models::ModelConfig;
use crate::schedule::Schedule;

/// Why a configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown preset `{0}` (known presets: {known})", known = data_manifests::preset_names())]
    UnknownPreset(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: not valid TOML: {message}")]
    Syntax { origin: String, message: String },
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
}

/// Which rater the Stage-I reconstruction targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RaterDraw {
    /// One rater index per mini-batch, shared by every image (the authors' code).
    PerBatch,
    /// One rater index per image (what the baselines do).
    PerSample,
}

/// Stage-I loss settings (method.md §3.2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossConfig {
    /// K prior samples of the bound loss (10).
    pub k_bound: i64,
    /// β, weight of the bound loss (0.5).
    pub beta: f64,
    /// Factor of the unsquared-norm L2 regulariser (1e-5).
    pub l2: f64,
    /// Reconstruction from a posterior sample (fixed code) or a prior sample (paper time).
    pub recon_from: ReconFrom,
    pub rater_draw: RaterDraw,
}

impl LossConfig {
    pub fn stage1_options(&self) -> Stage1Options {
        Stage1Options {
            k_bound: self.k_bound,
            beta: self.beta,
            l2: self.l2,
            recon_from: self.recon_from,
        }
    }
}

/// BatchNorm mode of the frozen backbone while Stage II trains the heads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BnMode {
    /// Batch statistics, running statistics keep drifting (the authors' code, §6.1 item 9).
    Train,
    /// Running statistics, nothing outside the heads changes.
    Eval,
}

/// Stage-II settings (method.md §3.3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage2Config {
    /// M, prior draws in the bank per image and step (100).
    pub bank: i64,
    pub backbone_bn: BnMode,
    /// Dropout2d in the heads while training (the authors: on, the model is in train mode).
    pub heads_dropout: bool,
    /// Leave raters who did not read a study out of D-Persona's losses, as the baselines do:
    /// Stage II's Dice ignores head k on the images whose rater k is absent, and Stage I's
    /// union and intersection are taken over the present raters only. Off (the default, and
    /// the authors' behaviour: their LIDC data pads missing reads with empty masks): an
    /// absent rater is an empty mask, so head k learns "nothing" for images rater k never
    /// saw and the intersection is empty wherever a rater is absent. Left out of
    /// `config.toml` when off, so configurations made before the key have the same hash.
    #[serde(default, skip_serializing_if = "is_false")]
    pub mask_absent_raters: bool,
    /// Each training image's bank drawn with the same ε at every epoch (seeded by the run
    /// seed and the image's study, target and slice), instead of fresh draws at every step
    /// (off: the authors'). An ablation: with fresh draws, the draw a head should pick for
    /// an image is a different code each epoch, a moving target for heads that learn to
    /// select; `dpersona diagnose` shows heads 2-4 attending almost uniformly. The image
    /// is augmented each epoch, so μ and σ still move with it. Left out of `config.toml`
    /// when off.
    #[serde(default, skip_serializing_if = "is_false")]
    pub fixed_bank: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Adam and the epoch schedule (method.md §4).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimConfig {
    /// Initial learning rate lr0 of the cosine schedule (1e-4).
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Slices per training mini-batch (12).
    pub batch_size: usize,
    pub epochs_stage1: u32,
    pub epochs_stage2: u32,
    /// Arithmetic of the forward pass and loss: fp32 (default, the authors'), bf16, fp16
    /// (with a loss scaler) or auto (bf16 on CUDA, fp32 on CPU). Weights and Adam state stay
    /// fp32 in every mode. See [`crate::precision`].
    #[serde(default, skip_serializing_if = "crate::precision::Precision::is_fp32")]
    pub precision: crate::precision::Precision,
    /// How the rate changes per epoch (`"cosine"`, `"constant"`, `{ poly = { power = 0.9 } }`,
    /// `{ step = { after_epoch = 40, decay = 0.1 } }`; see [`crate::schedule`]). Absent:
    /// cosine, which is also left out of `config.toml`, so the hash of every configuration
    /// made before the key existed is unchanged.
    #[serde(default, skip_serializing_if = "Schedule::is_default")]
    pub schedule: Schedule,
    /// Convolution kernels and input batches in the channels-last (NHWC) layout that cuDNN's
    /// tensor cores work in (see [`crate::models::memory_format`]); the same values, so a
    /// run's numbers change only by the convolution algorithm's summation order. Off (the
    /// default, left out of `config.toml`): NCHW, as tch and the authors.
    #[serde(default, skip_serializing_if = "is_false")]
    pub channels_last: bool,
    /// On CUDA, let cuDNN time its convolution algorithms on the first batches of each shape
    /// and keep the fastest (`torch.backends.cudnn.benchmark = True`). The algorithm chosen
    /// can differ between runs, so bit-for-bit repeatability on a GPU is given up. No effect
    /// on a CPU.
    #[serde(default, skip_serializing_if = "is_false")]
    pub cudnn_benchmark: bool,
}

/// Which split chooses the best checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SelectOn {
    /// The `val` split (NPC), or with `--fold` the fold's training studies marked `val`.
    Val,
    /// The test split, or with `--fold K` fold K's studies (the authors' LIDC protocol).
    Test,
}

/// How Stage II's per-rater validation Dice pairs heads with raters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage2Selection {
    /// Head k against rater k (what "personalised" means).
    Identity,
    /// Hungarian-matched heads (the authors' "Dice_each", method.md §5.5).
    Matched,
}

/// Per-epoch validation (method.md §4).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidationConfig {
    /// N prior samples per slice for Stage I's Dice_match (10).
    pub samples: i64,
    /// M, bank size of Stage II's validation (100).
    pub bank: i64,
    pub select_on: SelectOn,
    pub stage2_selection: Stage2Selection,
    /// Slices per validation forward pass (eval-mode BN: results do not depend on it).
    pub batch_size: usize,
    /// Early stopping: end the stage when this many epochs have passed since the best
    /// validation metric (the stage's epoch count stays the limit). None (the default, and
    /// the authors' loop): train every epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patience: Option<u32>,
    /// Early stopping's warm-up: no stage ends early before this many epochs. A method whose
    /// validation metric starts moving late (TAB; a D-Persona seed whose Stage I has not
    /// left the empty map) would otherwise stop before it learned anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_epochs: Option<u32>,
    /// Where early stopping's patience counts from: `start` (the default) the last strict
    /// rise of the metric; `after-empty` also no earlier than the last epoch whose
    /// validation predictions were all empty. A model that outputs the empty map has not
    /// started to segment, however its Dice compares with earlier epochs': TAB and
    /// CM-Global on the NPC-style set reached the empty map at epoch 5 (a strict rise over
    /// the random start's near-full maps) and sat on its Dice while their losses fell
    /// steeply, until patience ended them at the 20-epoch floor. A model that never leaves
    /// the empty map trains to the stage's epoch count, and the log says so.
    #[serde(default, skip_serializing_if = "PatienceFrom::is_start")]
    pub patience_from: PatienceFrom,
}

/// Where early stopping's patience counts from (`validation.patience_from`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PatienceFrom {
    /// The last epoch whose metric rose strictly above every earlier one.
    #[default]
    Start,
    /// As `start`, but never before the last epoch whose validation predictions were all
    /// empty: empty epochs do not spend patience.
    AfterEmpty,
}

impl PatienceFrom {
    fn is_start(&self) -> bool {
        *self == PatienceFrom::Start
    }
}

/// Loader settings (see [`crate::loader::LoaderConfig`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoaderSettings {
    /// Worker threads (0: one per core).
    pub threads: usize,
    /// Batches prepared ahead of the training thread.
    pub prefetch: usize,
    pub augment: AugmentKind,
}

/// What to do about non-finite losses (the authors' NaN guard cannot work, §4).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NanPolicy {
    /// A step whose loss terms are not all finite is skipped and counted; this many skipped
    /// steps in a row stop training with an error naming the step and the term.
    pub max_consecutive: u32,
}

/// Everything a training run depends on. Saved as `RUN/config.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Seed of every random draw (torch, rater draws, loader shuffles and augmentations).
    pub seed: u64,
    pub model: ModelConfig,
    pub losses: LossConfig,
    pub stage2: Stage2Config,
    pub optim: OptimConfig,
    pub validation: ValidationConfig,
    pub loader: LoaderSettings,
    pub nan: NanPolicy,
    /// The baseline this run trains instead of D-Persona (`dpersona train --method NAME`,
    /// table `[baseline]` with `method = "NAME"` and the method's options). Absent for
    /// D-Persona, so its `config.toml` and config hash are unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<crate::baselines::BaselineSpec>,
}

/// Image channels and raters come from the manifest, whatever the preset says.
pub fn adapt_to_manifest(cfg: &mut TrainConfig, manifest: &schemas::manifest::Manifest) {
    cfg.model.in_channels = manifest.header.channels.len() as i64;
    cfg.model.raters = manifest.header.raters.len() as i64;
}

/// Merges `over` into `base`: tables merge key by key, every other value replaces.
pub fn merge_toml(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge_toml(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

fn parse_toml(text: &str, origin: &str) -> Result<toml::Value, ConfigError> {
    text.parse::<toml::Table>()
        .map(toml::Value::Table)
        .map_err(|e| ConfigError::Syntax {
            origin: origin.to_string(),
            message: e.to_string(),
        })
}

impl TrainConfig {
    /// Parses a complete configuration (for example a run's `config.toml`).
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Invalid {
            origin: origin.to_string(),
            message: e.to_string(),
        })
    }

    /// A preset by name (`data_manifests::PRESETS`).
    pub fn preset(name: &str) -> Result<Self, ConfigError> {
        Self::resolve(name, None)
    }

    /// Preset `preset` with the partial TOML `user` (text, origin label) merged over it.
    /// Unknown keys and wrong types are errors naming the key and where it came from.
    pub fn resolve(preset: &str, user: Option<(&str, &str)>) -> Result<Self, ConfigError> {
        Self::resolve_for(preset, None, user)
    }

    /// Preset `preset`, then the preset's override for `method` (the `--method` name;
    /// `data_manifests::METHOD_OVERRIDES`, if it has one), then the partial TOML `user`,
    /// each merged over the one before.
    pub fn resolve_for(
        preset: &str,
        method: Option<&str>,
        user: Option<(&str, &str)>,
    ) -> Result<Self, ConfigError> {
        let p = data_manifests::preset(preset)
            .ok_or_else(|| ConfigError::UnknownPreset(preset.to_string()))?;
        let mut origin = format!("preset `{preset}`");
        let mut value = parse_toml(p.toml, &origin)?;
        if let Some(o) = method.and_then(|m| data_manifests::method_override(preset, m)) {
            let label = format!("presets/{preset}/{}.toml", o.method);
            merge_toml(&mut value, parse_toml(o.toml, &label)?);
            origin = format!("{label} (merged over {origin})");
        }
        if let Some((text, user_origin)) = user {
            merge_toml(&mut value, parse_toml(text, user_origin)?);
            origin = format!("{user_origin} (merged over {origin})");
        }
        // Re-serialise so that the error of a bad key carries the key's table and line.
        let merged = toml::to_string(&value).map_err(|e| ConfigError::Invalid {
            origin: origin.clone(),
            message: e.to_string(),
        })?;
        let cfg = Self::from_toml_str(&merged, &origin)?;
        cfg.validate()
            .map_err(|message| ConfigError::Invalid { origin, message })?;
        Ok(cfg)
    }

    /// Preset plus an optional user file.
    pub fn load(preset: &str, user_file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_for(preset, None, user_file)
    }

    /// Preset, its override for `method` (if any), and an optional user file.
    pub fn load_for(
        preset: &str,
        method: Option<&str>,
        user_file: Option<&Path>,
    ) -> Result<Self, ConfigError> {
        match user_file {
            None => Self::resolve_for(preset, method, None),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
                    path: path.to_path_buf(),
                    source,
                })?;
                Self::resolve_for(preset, method, Some((&text, &path.display().to_string())))
            }
        }
    }

    /// Values that deserialise but cannot train.
    pub fn validate(&self) -> Result<(), String> {
        self.model.validate().map_err(|e| e.to_string())?;
        let o = &self.optim;
        if o.lr <= 0.0 || !o.lr.is_finite() {
            return Err(format!("optim.lr must be > 0, got {}", o.lr));
        }
        if !(0.0..1.0).contains(&o.beta1) || !(0.0..1.0).contains(&o.beta2) || o.eps <= 0.0 {
            return Err(format!(
                "optim.beta1 {} and optim.beta2 {} must lie in [0,1) and optim.eps {} be > 0",
                o.beta1, o.beta2, o.eps
            ));
        }
        o.schedule.validate()?;
        if o.batch_size == 0 || self.validation.batch_size == 0 {
            return Err("optim.batch_size and validation.batch_size must be >= 1".into());
        }
        if self.losses.k_bound < 1
            || self.stage2.bank < 1
            || self.validation.bank < 1
            || self.validation.samples < 1
        {
            return Err(format!(
                "losses.k_bound {}, stage2.bank {}, validation.bank {} and validation.samples {} must be >= 1",
                self.losses.k_bound, self.stage2.bank, self.validation.bank, self.validation.samples
            ));
        }
        Ok(())
    }

    /// The configuration as TOML (the run's `config.toml`).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("the training config serialises to TOML")
    }

    /// SHA-256 of the canonical TOML, recorded in every checkpoint so a resumed run can
    /// tell that its configuration did not change.
    pub fn hash(&self) -> String {
        schemas::hashing::sha256_bytes(self.to_toml().as_bytes())
    }

    /// Epochs of stage 1 or 2.
    pub fn epochs(&self, stage: u8) -> u32 {
        if stage == 1 {
            self.optim.epochs_stage1
        } else {
            self.optim.epochs_stage2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_deserialises_and_round_trips() {
        for p in data_manifests::PRESETS {
            let cfg = TrainConfig::preset(p.name).unwrap_or_else(|e| panic!("{}: {e}", p.name));
            let again = TrainConfig::from_toml_str(&cfg.to_toml(), "round trip").unwrap();
            assert_eq!(cfg, again, "{}", p.name);
        }
    }

    #[test]
    fn paper_presets_hold_method_section_4() {
        let lidc = TrainConfig::preset("paper-lidc").unwrap();
        assert_eq!(lidc.model, ModelConfig::paper(1));
        assert_eq!(
            (lidc.optim.epochs_stage1, lidc.optim.epochs_stage2),
            (100, 100)
        );
        assert_eq!(lidc.optim.batch_size, 12);
        assert_eq!(lidc.optim.lr, 1e-4);
        assert_eq!(lidc.losses.k_bound, 10);
        assert_eq!(lidc.losses.beta, 0.5);
        assert_eq!(lidc.losses.l2, 1e-5);
        assert_eq!(lidc.losses.rater_draw, RaterDraw::PerBatch);
        assert_eq!(lidc.stage2.bank, 100);
        assert_eq!(lidc.stage2.backbone_bn, BnMode::Train);
        assert_eq!(lidc.validation.select_on, SelectOn::Test);
        assert_eq!(lidc.validation.stage2_selection, Stage2Selection::Matched);
        assert_eq!(lidc.seed, 1337);
        let npc = TrainConfig::preset("paper-npc").unwrap();
        assert_eq!(npc.model, ModelConfig::paper(3));
        assert_eq!(
            (npc.optim.epochs_stage1, npc.optim.epochs_stage2),
            (200, 200)
        );
        assert_eq!(npc.validation.select_on, SelectOn::Val);
        assert_eq!(
            TrainConfig::preset("small").unwrap().model,
            ModelConfig::small(1)
        );
    }

    /// The new keys are left out of `config.toml` at their defaults, so the hash of every
    /// configuration made before they existed is unchanged; set, they change it.
    #[test]
    fn schedule_and_mask_keys_keep_old_hashes() {
        // `small` turns mask_absent_raters on (its data marks absence): only the schedule
        // key is absent from its text.
        assert!(
            TrainConfig::preset("small")
                .unwrap()
                .stage2
                .mask_absent_raters
        );
        for p in ["small", "paper-lidc"] {
            let cfg = TrainConfig::preset(p).unwrap();
            let text = cfg.to_toml();
            assert!(!text.contains("schedule"), "{p}: {text}");
            if p == "paper-lidc" {
                assert!(!text.contains("mask_absent_raters"), "{p}: {text}");
            }
            let spelt_out = format!(
                "[optim]\nschedule = \"cosine\"\n[stage2]\nmask_absent_raters = {}\n",
                cfg.stage2.mask_absent_raters
            );
            let explicit = TrainConfig::resolve(p, Some((&spelt_out, "t.toml"))).unwrap();
            assert_eq!(explicit.hash(), cfg.hash(), "{p}");
            let poly = TrainConfig::resolve(
                p,
                Some(("[optim]\nschedule = { poly = { power = 0.9 } }\n", "t.toml")),
            )
            .unwrap();
            assert_ne!(poly.hash(), cfg.hash(), "{p}");
        }
    }

    #[test]
    fn schedule_forms_parse_and_round_trip() {
        let cases = [
            ("\"constant\"", Schedule::Constant),
            ("\"cosine\"", Schedule::Cosine),
            ("{ poly = { power = 0.9 } }", Schedule::Poly { power: 0.9 }),
            (
                "{ step = { after_epoch = 40, decay = 0.1 } }",
                Schedule::Step {
                    after_epoch: 40,
                    decay: 0.1,
                },
            ),
        ];
        for (text, want) in cases {
            let user = format!("[optim]\nschedule = {text}\n");
            let cfg = TrainConfig::resolve("small", Some((&user, "t.toml"))).unwrap();
            assert_eq!(cfg.optim.schedule, want, "{text}");
            let again = TrainConfig::from_toml_str(&cfg.to_toml(), "round trip").unwrap();
            assert_eq!(again, cfg, "{text}");
        }
        for (text, needle) in [
            ("\"linear\"", "linear"),
            ("{ poly = { pow = 0.9 } }", "pow"),
            ("{ poly = { power = -1.0 } }", "optim.schedule.poly.power"),
            (
                "{ step = { after_epoch = 4, decay = -0.1 } }",
                "optim.schedule.step.decay",
            ),
        ] {
            let user = format!("[optim]\nschedule = {text}\n");
            let err = TrainConfig::resolve("small", Some((&user, "t.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{text}: {err}");
            assert!(err.contains("t.toml"), "{text}: {err}");
        }
    }

    /// `--preset compare`: D-Persona's base and each method's authors' settings on top.
    #[test]
    fn compare_preset_and_method_overrides() {
        use crate::baselines::BaselineSpec;
        let base = TrainConfig::preset("compare").unwrap();
        assert_eq!(base.optim.lr, 1e-3);
        assert_eq!(base.optim.schedule, Schedule::Cosine);
        assert_eq!(base.optim.batch_size, 12);
        assert_eq!((base.stage2.bank, base.validation.bank), (100, 100));
        assert!(base.stage2.mask_absent_raters);
        assert!(base.baseline.is_none());
        // Every override resolves, names its own method, and changes something.
        for o in data_manifests::METHOD_OVERRIDES {
            let cfg = TrainConfig::resolve_for(o.preset, Some(o.method), None)
                .unwrap_or_else(|e| panic!("{}/{}: {e}", o.preset, o.method));
            if let Some(b) = &cfg.baseline {
                assert_eq!(b.name(), o.method, "{}/{}", o.preset, o.method);
            }
            assert_ne!(cfg, TrainConfig::preset(o.preset).unwrap(), "{}", o.method);
        }
        let tab = TrainConfig::resolve_for("compare", Some("tab"), None).unwrap();
        // TAB's 5e-5 is half the harness's 1e-4: the same ratio to the base rate.
        assert_eq!(tab.optim.lr / base.optim.lr, 5e-5 / 1e-4);
        assert_eq!(tab.optim.schedule, Schedule::Poly { power: 0.9 });
        let pio = TrainConfig::resolve_for("compare", Some("pionono"), None).unwrap();
        assert_eq!(
            pio.optim.schedule,
            Schedule::Step {
                after_epoch: 40,
                decay: 0.1
            }
        );
        assert_eq!(pio.optim.lr, base.optim.lr);
        match pio.baseline {
            Some(BaselineSpec::Pionono(o)) => {
                assert_eq!((o.latent_lr, o.kl_factor, o.latent_dim), (0.02, 0.0005, 8))
            }
            other => panic!("{other:?}"),
        }
        for m in ["cm-global", "cm-pixel"] {
            let cm = TrainConfig::resolve_for("compare", Some(m), None).unwrap();
            match cm.baseline {
                Some(BaselineSpec::CmGlobal(o)) | Some(BaselineSpec::CmPixel(o)) => {
                    assert_eq!(o.cm_lr, 1e-2, "{m}")
                }
                other => panic!("{m}: {other:?}"),
            }
        }
        // Methods without an override, and other presets, are the preset itself.
        assert_eq!(
            TrainConfig::resolve_for("compare", Some("mv"), None).unwrap(),
            base
        );
        assert_eq!(
            TrainConfig::resolve_for("small", Some("tab"), None).unwrap(),
            TrainConfig::preset("small").unwrap()
        );
        // A user's file wins over the override, and its errors name both files.
        let mine = TrainConfig::resolve_for(
            "compare",
            Some("tab"),
            Some(("[optim]\nlr = 1e-4\n", "mine.toml")),
        )
        .unwrap();
        assert_eq!(mine.optim.lr, 1e-4);
        assert_eq!(mine.optim.schedule, Schedule::Poly { power: 0.9 });
        let err = TrainConfig::resolve_for(
            "compare",
            Some("tab"),
            Some(("[baseline]\nrnak = 3\n", "mine.toml")),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("rnak")
                && err.contains("mine.toml")
                && err.contains("presets/compare/tab.toml"),
            "{err}"
        );
    }

    #[test]
    fn mask_absent_raters_defaults_per_preset() {
        assert!(
            !TrainConfig::preset("paper-lidc")
                .unwrap()
                .stage2
                .mask_absent_raters
        );
        assert!(
            TrainConfig::preset("paper-npc")
                .unwrap()
                .stage2
                .mask_absent_raters
        );
        // small's synthetic LIDC-style data marks absent raters.
        assert!(
            TrainConfig::preset("small")
                .unwrap()
                .stage2
                .mask_absent_raters
        );
    }

    #[test]
    fn user_toml_overrides_only_its_keys() {
        let cfg = TrainConfig::resolve(
            "paper-lidc",
            Some(("[optim]\nepochs_stage1 = 3\n", "mine.toml")),
        )
        .unwrap();
        assert_eq!(cfg.optim.epochs_stage1, 3);
        assert_eq!(cfg.optim.epochs_stage2, 100);
        assert_eq!(cfg.optim.lr, 1e-4);
    }

    #[test]
    fn unknown_key_is_an_error_naming_key_and_file() {
        let err = TrainConfig::resolve(
            "small",
            Some(("[optim]\nlearning_rate = 0.1\n", "mine.toml")),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("learning_rate"), "{err}");
        assert!(err.contains("mine.toml"), "{err}");
        let err = TrainConfig::resolve("small", Some(("sed = 1\n", "top.toml")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("sed"), "{err}");
    }

    #[test]
    fn wrong_type_and_bad_values_are_errors() {
        let err = TrainConfig::resolve("small", Some(("[optim]\nlr = \"fast\"\n", "t.toml")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("lr"), "{err}");
        let err = TrainConfig::resolve(
            "small",
            Some(("[stage2]\nbackbone_bn = \"frozen\"\n", "t.toml")),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("frozen"), "{err}");
        let err = TrainConfig::resolve("small", Some(("[optim]\nlr = -1.0\n", "t.toml")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("optim.lr"), "{err}");
        let err = TrainConfig::resolve("nope", None).unwrap_err().to_string();
        assert!(err.contains("paper-lidc"), "{err}");
    }
}
