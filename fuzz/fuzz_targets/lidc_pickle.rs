//! The restricted unpickler (ingest/src/pickle) on arbitrary bytes, then what the LIDC
//! pickle format does with a document: every numpy array decoded to f64 and the dict items'
//! study ids derived. Parsing must never execute anything, panic or outgrow the input.
#![no_main]
use ingest::pickle::{parse, Node};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = parse(data) else {
        return;
    };
    for node in &doc.nodes {
        if let Node::Array(a) = node {
            let _ = a.to_f64_c_order(data);
        }
    }
    if let Some(entries) = doc.dict(&doc.root) {
        let _ = ingest::lidc_pickle::items::study_ids(data, entries);
    }
});
