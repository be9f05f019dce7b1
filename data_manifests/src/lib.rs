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
        name: "small",
        summary: "small U-Net, few epochs: tests and the CPU demo (64x64 crops work)",
        toml: include_str!("../presets/small.toml"),
    },
];

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
