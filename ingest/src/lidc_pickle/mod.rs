//! Preprocessed LIDC pickles (MedicalMatting's `lidc_attributes.pkl`, the Prob. U-Net
//! port's `data_lidc.pickle`): 2D crops with four masks each, read with the restricted
//! unpickler ([`crate::pickle`]) and split with the authors' exact folds.
//!
//! - [`format`]: the [`crate::study::SourceFormat`].
//! - [`items`]: the dict of dicts into items, structure checked.
//! - [`folds`]: numpy's MT19937 shuffle and sklearn's KFold, bit for bit.
pub mod folds;
pub mod format;
pub mod items;

pub use folds::SplitUnit;
pub use format::{LidcPickleFormat, LidcPickleParams};
