//! Unit tests on small pickles written by CPython 3.11 + numpy 2.4 (`pickle.dumps` of
//! `{'k1': {'image': np.array([[0,255],[7,128]], np.uint8), 'masks': [np.array([[1,0],
//! [0,1]], bool)] * 2, 'series_uid': 'P1_a'}}`, hex below), every prefix of them, and
//! byte flips: the reader must decode the first and never panic on the others.
use super::*;

const P2: &str = "80027d710058020000006b3171017d7102285805000000696d6167657103636e756d70792e5f636f72652e6d756c746961727261790a5f7265636f6e7374727563740a7104636e756d70790a6e6461727261790a71054b00857106635f636f646563730a656e636f64650a7107580100000062710858060000006c6174696e31710986710a52710b87710c52710d284b014b024b0286710e636e756d70790a64747970650a710f5802000000753171108988877111527112284b0358010000007c71134e4e4e4affffffff4affffffff4b0074711462896807580600000000c3bf07c280711568098671165271177471186258050000006d61736b7371195d711a28680468054b0085711b680b87711c52711d284b014b024b0286711e680f58020000006231711f8988877120527121284b0368134e4e4e4affffffff4affffffff4b00747122628968075804000000010000017123680986712452712574712662681d65580a0000007365726965735f7569647127580400000050315f61712875732e";
const P5: &str = "800595f1000000000000007d948c026b31947d94288c05696d616765948c136e756d70792e5f636f72652e6e756d65726963948c0b5f66726f6d6275666665729493942896040000000000000000ff0780948c056e756d7079948c0564747970659493948c02753194898887945294284b038c017c944e4e4e4affffffff4affffffff4b007494624b024b0286948c014394749452948c056d61736b73945d94286806289604000000000000000100000194680a8c02623194898887945294284b03680e4e4e4e4affffffff4affffffff4b007494624b024b028694681174945294681d658c0a7365726965735f756964948c0450315f619475732e";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn check_doc(data: &[u8]) {
    let doc = parse(data).unwrap();
    let top = doc.dict(&doc.root).unwrap();
    assert_eq!(top.len(), 1);
    assert_eq!(top[0].0, Value::Str("k1".into()));
    let item = doc.dict(&top[0].1).unwrap();
    let get = |k: &str| {
        &item
            .iter()
            .find(|(key, _)| *key == Value::Str(k.into()))
            .unwrap()
            .1
    };
    let Some(Node::Array(img)) = doc.node(get("image")) else {
        panic!("image is not an array")
    };
    assert_eq!(img.shape, vec![2, 2]);
    assert_eq!(
        img.to_f64_c_order(data).unwrap(),
        vec![0.0, 255.0, 7.0, 128.0]
    );
    let Some(Node::List(masks)) = doc.node(get("masks")) else {
        panic!("masks is not a list")
    };
    // `[m] * 2`: the second entry is a memo fetch of the same array.
    assert_eq!(masks.len(), 2);
    assert_eq!(masks[0], masks[1]);
    let Some(Node::Array(m)) = doc.node(&masks[1]) else {
        panic!("mask is not an array")
    };
    assert_eq!(m.dtype.kind, numpy::Kind::Bool);
    assert_eq!(m.to_f64_c_order(data).unwrap(), vec![1.0, 0.0, 0.0, 1.0]);
    assert_eq!(*get("series_uid"), Value::Str("P1_a".into()));
}

#[test]
fn reads_numpy_pickles_of_protocol_2_and_5() {
    check_doc(&unhex(P2));
    check_doc(&unhex(P5));
}

#[test]
fn every_prefix_is_a_clean_error() {
    for data in [unhex(P2), unhex(P5)] {
        for n in 0..data.len() {
            let e = parse(&data[..n]).unwrap_err();
            assert!(!e.message.is_empty());
        }
    }
}

#[test]
fn byte_flips_never_panic() {
    // Deterministic LCG: every position gets several replacement values.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for base in [unhex(P2), unhex(P5)] {
        for i in 0..base.len() {
            for _ in 0..6 {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let mut d = base.clone();
                d[i] = (x >> 56) as u8;
                let _ = parse(&d);
            }
        }
    }
}

#[test]
fn hostile_lengths_allocate_nothing() {
    // BINBYTES8 claiming 2^60 bytes, BINUNICODE claiming 4 GB, LONG_BINGET of a missing key.
    for data in [
        &b"\x80\x05\x8e\x00\x00\x00\x00\x00\x00\x00\x10."[..],
        &b"\x80\x02X\xff\xff\xff\xff."[..],
        &b"\x80\x02j\xff\xff\xff\xff."[..],
        &b"\x80\x02((((((((((((((((((((((((((((((."[..],
    ] {
        assert!(parse(data).is_err());
    }
    // A flood of EMPTY_LISTs stops at the object limit, not at memory exhaustion.
    let mut flood = vec![0x80, 0x02];
    flood.extend(std::iter::repeat_n(b']', object_limit(200_000) + 10));
    let e = parse(&flood).unwrap_err();
    assert!(e.message.contains("more than"), "{e}");
}

#[test]
fn globals_outside_the_list_are_refused_by_name() {
    let e = parse(b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00ls\x85R.").unwrap_err();
    assert!(e.message.contains("global os.system is not allowed"), "{e}");
    let e = parse(b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93.").unwrap_err();
    assert!(
        e.message.contains("global builtins.eval is not allowed"),
        "{e}"
    );
}

#[test]
fn object_dtype_is_refused() {
    let e = parse(b"\x80\x02cnumpy\ndtype\nX\x02\x00\x00\x00O8\x89\x88\x87R.").unwrap_err();
    assert!(e.message.contains("object arrays are refused"), "{e}");
}
