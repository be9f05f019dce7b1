//! The items of a preprocessed LIDC pickle: a dict of dicts, one per 2D crop.
//!
//! Structure is checked here, once, when the pickle is read (`image`, `masks` and
//! `series_uid` present, four masks, every array square and of the common size); values
//! (0/1 masks, images in range, no NaN) are checked when an item's row is built, so a
//! bad item costs its row only and the others are still ingested.
use std::collections::{HashMap, HashSet};

use crate::pickle::numpy::Array;
use crate::pickle::{Document, Node, Value};

/// Raters per item in both circulating files.
pub const N_MASKS: usize = 4;

/// One dict item, in the pickle's order.
#[derive(Debug, Clone)]
pub struct Item {
    /// The dict key as text, made unique (see [`study_ids`]).
    pub study_id: String,
    /// `series_uid` before the first `_` (the study id when `series_uid` is missing).
    pub patient_id: String,
    /// The arrays, or why the item cannot be used.
    pub arrays: Result<ItemArrays, String>,
}

#[derive(Debug, Clone)]
pub struct ItemArrays {
    pub image: Array,
    pub masks: Vec<Array>,
}

/// The key of an item as text: a `str` as is, an `int` in decimal, `bytes` as latin-1;
/// any other key is `item-{index}`.
fn key_text(data: &[u8], key: &Value, index: usize) -> String {
    match key {
        Value::Str(s) => s.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Bool(b) => u8::from(*b).to_string(),
        Value::Bytes(b) => b
            .bytes(data)
            .map(|b| b.iter().map(|&c| char::from(c)).collect())
            .unwrap_or_else(|| format!("item-{index}")),
        _ => format!("item-{index}"),
    }
}

/// Study ids from the dict keys: the key's text, and where two keys read the same (a
/// `str` "7" and an `int` 7, or keys that are not text) the later one gets `#{index}`
/// appended, index = its position in the pickle, so ids stay unique and stable.
pub fn study_ids(data: &[u8], entries: &[(Value, Value)]) -> Vec<String> {
    let mut seen = HashSet::new();
    entries
        .iter()
        .enumerate()
        .map(|(i, (k, _))| {
            let t = key_text(data, k, i);
            if seen.insert(t.clone()) {
                t
            } else {
                let u = format!("{t}#{i}");
                seen.insert(u.clone());
                u
            }
        })
        .collect()
}

/// Every item of the pickle (the top value must be a dict), and the common crop size
/// (the size most items' images have).
pub fn read_items(doc: &Document, data: &[u8]) -> Result<(Vec<Item>, Option<usize>), String> {
    let Some(entries) = doc.dict(&doc.root) else {
        return Err(format!(
            "the pickle holds a {}, expected a dict of items (image, masks, series_uid)",
            doc.type_name(&doc.root)
        ));
    };
    let ids = study_ids(data, entries);
    let mut items: Vec<Item> = entries
        .iter()
        .zip(ids)
        .map(|((_, v), study_id)| {
            let patient = patient_of(doc, v).unwrap_or_else(|| study_id.clone());
            Item {
                arrays: item_arrays(doc, v),
                study_id,
                patient_id: patient,
            }
        })
        .collect();
    // The common size: the most frequent square image side, first seen on ties.
    let mut count: HashMap<usize, usize> = HashMap::new();
    let mut first: Vec<usize> = Vec::new();
    for it in &items {
        if let Ok(a) = &it.arrays {
            if let [h, w] = a.image.shape[..] {
                if h == w {
                    let c = count.entry(h).or_insert(0);
                    if *c == 0 {
                        first.push(h);
                    }
                    *c += 1;
                }
            }
        }
    }
    let mut size: Option<usize> = None;
    for &s in &first {
        if size.is_none_or(|b| count[&s] > count[&b]) {
            size = Some(s);
        }
    }
    if let Some(s) = size {
        for it in &mut items {
            if let Ok(a) = &it.arrays {
                if let Some(why) = shape_problem(a, s) {
                    it.arrays = Err(why);
                }
            }
        }
    }
    Ok((items, size))
}

fn field<'a>(doc: &'a Document, item: &Value, name: &str) -> Option<&'a Value> {
    doc.dict(item)?
        .iter()
        .find(|(k, _)| matches!(k, Value::Str(s) if &**s == name))
        .map(|(_, v)| v)
}

fn patient_of(doc: &Document, item: &Value) -> Option<String> {
    match field(doc, item, "series_uid")? {
        Value::Str(s) => Some(s.split('_').next().unwrap_or(s).to_string()),
        _ => None,
    }
}

fn array<'a>(doc: &'a Document, v: &Value) -> Option<&'a Array> {
    match doc.node(v)? {
        Node::Array(a) => Some(a),
        _ => None,
    }
}

fn item_arrays(doc: &Document, v: &Value) -> Result<ItemArrays, String> {
    if doc.dict(v).is_none() {
        return Err(format!(
            "the item is a {}, expected a dict with image, masks and series_uid",
            doc.type_name(v)
        ));
    }
    for key in ["image", "masks", "series_uid"] {
        if field(doc, v, key).is_none() {
            return Err(format!("missing key `{key}`"));
        }
    }
    let sv = field(doc, v, "series_uid").unwrap_or(&Value::None);
    if !matches!(sv, Value::Str(_)) {
        return Err(format!(
            "`series_uid` is a {}, expected a str",
            doc.type_name(sv)
        ));
    }
    let iv = field(doc, v, "image").unwrap_or(&Value::None);
    let image = array(doc, iv)
        .ok_or_else(|| format!("`image` is a {}, expected a numpy array", doc.type_name(iv)))?
        .clone();
    let mv = field(doc, v, "masks").unwrap_or(&Value::None);
    let list = match doc.node(mv) {
        Some(Node::List(l) | Node::Tuple(l)) => l,
        _ => {
            return Err(format!(
                "`masks` is a {}, expected a list of {N_MASKS} arrays",
                doc.type_name(mv)
            ))
        }
    };
    if list.len() != N_MASKS {
        return Err(format!(
            "`masks` holds {} masks, expected {N_MASKS}",
            list.len()
        ));
    }
    let masks = list
        .iter()
        .enumerate()
        .map(|(r, m)| {
            array(doc, m).cloned().ok_or_else(|| {
                format!("mask {r} is a {}, expected a numpy array", doc.type_name(m))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ItemArrays { image, masks })
}

/// Why an item's arrays do not fit the common `size`, if they do not.
fn shape_problem(a: &ItemArrays, size: usize) -> Option<String> {
    let want = [size, size];
    if a.image.shape != want {
        return Some(format!(
            "image has shape {:?}, the pickle's other items are {size}x{size}",
            a.image.shape
        ));
    }
    a.masks.iter().position(|m| m.shape != want).map(|r| {
        format!(
            "mask {r} has shape {:?}, the image is {size}x{size}",
            a.masks[r].shape
        )
    })
}
