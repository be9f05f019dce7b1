//! Presets and example manifests shipped with dpersona.
//!
//! Presets are TOML files under `presets/`, embedded at compile time so the binary works
//! from any folder; `train` deserialises them into its config struct (with
//! `deny_unknown_fields`, so a typo in a user's `--config` is an error).

/// A named training preset.
#[derive(Debug, Clone, Copy)]
pub struct Preset {
    pub name: &'static str,
    /// One line shown by `dpersona train --help`.
    pub summary: &'static str,
    pub toml: &'static str,
}

/// Every preset, in the order `--help` lists them.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "paper-lidc",
        summary: "the authors' LIDC setup: ResNet-34 U-Net, 100+100 epochs, selection on the fold's test split",
        toml: include_str!("../presets/paper-lidc.toml"),
    },
    Preset {
        name: "paper-npc",
        summary: "the authors' NPC-170 setup: 3 channels, 200+200 epochs, selection on the val split",
        toml: include_str!("../presets/paper-npc.toml"),
    },
    Preset {
        name: "compare",
        summary: "the comparison (issue #12): small U-Net, authors' rates scaled for it, each method's own schedule (per-method files in presets/compare/)",
        toml: include_str!("../presets/compare.toml"),
    },
    Preset {
        name: "small",
        summary: "small U-Net, few epochs: tests and the CPU demo (64x64 crops work)",
        toml: include_str!("../presets/small.toml"),
    },
];

/// Keys merged over a preset when `dpersona train --method METHOD --preset PRESET` runs:
/// the settings a method's authors use where they differ from the preset's (learning rate,
/// schedule, loss weights). A user's `--config` is merged over them.
#[derive(Debug, Clone, Copy)]
pub struct MethodOverride {
    pub preset: &'static str,
    /// The `--method` name.
    pub method: &'static str,
    pub toml: &'static str,
}

/// Every per-method override (`presets/<preset>/<method>.toml`).
pub const METHOD_OVERRIDES: &[MethodOverride] = &[
    MethodOverride {
        preset: "compare",
        method: "prob-unet",
        toml: include_str!("../presets/compare/prob-unet.toml"),
    },
    MethodOverride {
        preset: "compare",
        method: "cm-global",
        toml: include_str!("../presets/compare/cm-global.toml"),
    },
    MethodOverride {
        preset: "compare",
        method: "cm-pixel",
        toml: include_str!("../presets/compare/cm-pixel.toml"),
    },
    MethodOverride {
        preset: "compare",
        method: "pionono",
        toml: include_str!("../presets/compare/pionono.toml"),
    },
    MethodOverride {
        preset: "compare",
        method: "tab",
        toml: include_str!("../presets/compare/tab.toml"),
    },
];

/// The override of `method` under `preset`, if it has one.
pub fn method_override(preset: &str, method: &str) -> Option<&'static MethodOverride> {
    METHOD_OVERRIDES
        .iter()
        .find(|o| o.preset == preset && o.method == method)
}

/// Looks a preset up by name.
pub fn preset(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

/// The names of all presets, comma-separated (for error messages and `--help`).
pub fn preset_names() -> String {
    PRESETS
        .iter()
        .map(|p| p.name)
        .collect::<Vec<_>>()
        .join(", ")
}
