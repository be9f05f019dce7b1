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
pub const PRESETS: &[Preset] = &[];

/// Looks a preset up by name.
pub fn preset(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}
