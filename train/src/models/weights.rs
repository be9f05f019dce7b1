//! Loading ImageNet ResNet-34 weights (torchvision names, safetensors) into the backbone's
//! encoder (method.md §2.2, §8).
//!
//! The file holds a torchvision `resnet34` state dict (`conv1.weight`, `bn1.running_mean`,
//! `layer1.0.conv1.weight`, ...); `fc.*` and `*.num_batches_tracked` are ignored. For one
//! input channel conv1 `[64,3,7,7]` is summed over its RGB axis to `[64,1,7,7]`, as smp does.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::nn::VarStore;
use tch::Tensor;

/// Path prefix of the encoder variables inside a D-Persona VarStore.
pub const ENCODER_PREFIX: &str = "backbone.encoder.";

#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("{file}: cannot read safetensors: {source}")]
    Read {
        file: PathBuf,
        source: tch::TchError,
    },
    #[error("{file}: no variables under `{ENCODER_PREFIX}` in the model (is the backbone resnet34-unet?)")]
    NoEncoder { file: PathBuf },
    #[error("{file}: in_channels {in_channels} not supported for ImageNet weights (1 or 3)")]
    Channels { file: PathBuf, in_channels: i64 },
    #[error("{file}: not a torchvision ResNet-34 state dict: {problems}")]
    Mismatch { file: PathBuf, problems: String },
}

/// Copies every `backbone.encoder.*` variable (parameters and BN running statistics) from
/// `file`. All problems (missing tensors, shape mismatches) are collected into one error;
/// nothing is copied unless every tensor fits.
pub fn load_backbone_weights(
    vs: &mut VarStore,
    file: &Path,
    in_channels: i64,
) -> Result<(), WeightsError> {
    let err_file = || file.to_path_buf();
    if in_channels != 1 && in_channels != 3 {
        return Err(WeightsError::Channels {
            file: err_file(),
            in_channels,
        });
    }
    let stored: HashMap<String, Tensor> = Tensor::read_safetensors(file)
        .map_err(|source| WeightsError::Read {
            file: err_file(),
            source,
        })?
        .into_iter()
        .collect();
    let mut targets: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(name, _)| name.starts_with(ENCODER_PREFIX))
        .collect();
    if targets.is_empty() {
        return Err(WeightsError::NoEncoder { file: err_file() });
    }
    targets.sort_by(|a, b| a.0.cmp(&b.0));
    let mut problems = Vec::new();
    let mut sources = Vec::new();
    for (name, var) in &targets {
        let tv_name = &name[ENCODER_PREFIX.len()..];
        let Some(src) = stored.get(tv_name) else {
            problems.push(format!("missing `{tv_name}`"));
            continue;
        };
        let src = if tv_name == "conv1.weight" && in_channels == 1 && src.size().get(1) == Some(&3)
        {
            src.sum_dim_intlist(1, true, src.kind())
        } else {
            src.shallow_clone()
        };
        if src.size() != var.size() {
            problems.push(format!(
                "`{tv_name}` has shape {:?}, the model needs {:?}",
                src.size(),
                var.size()
            ));
            continue;
        }
        sources.push((var.shallow_clone(), src));
    }
    if !problems.is_empty() {
        return Err(WeightsError::Mismatch {
            file: err_file(),
            problems: problems.join("; "),
        });
    }
    tch::no_grad(|| {
        for (mut var, src) in sources {
            var.copy_(&src.to_kind(var.kind()).to_device(var.device()));
        }
    });
    Ok(())
}
