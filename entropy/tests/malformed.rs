//! Damaged input never panics or hangs: decoders return `Err` or wrong symbols, and the
//! `finish` checks catch most truncations and mismatches.

use lcodec_entropy::{
    AdaptiveBit, AdaptiveFrequency, AnsDecoder, AnsEncoder, Categorical, Decode, Encode, Error,
    Family, RangeDecoder, RangeEncoder, tables,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SYMBOLS: usize = 2000;

/// Encodes a mixed stream of every model kind, with escapes.
fn encode_mixed(enc: &mut impl Encode) {
    let cat = Categorical::from_counts(&[50, 20, 5, 1, 1, 0, 3]).expect("model");
    let mut adaptive = AdaptiveFrequency::new(40).expect("model");
    let mut bit = AdaptiveBit::new();
    let t = tables(Family::Laplace);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for i in 0..SYMBOLS {
        enc.encode([0, 1, 2, 3, 4, 6][i % 6], &cat).expect("cat");
        enc.encode_adaptive(rng.random_range(0..40), &mut adaptive)
            .expect("adaptive");
        enc.encode_bit_adaptive(rng.random_bool(0.2), &mut bit)
            .expect("bit");
        let v = if i % 97 == 0 {
            1_000_000
        } else {
            rng.random_range(-30..30)
        };
        enc.encode_integer(v, t.get(i % 64).expect("scale"))
            .expect("integer");
        enc.encode_bits(rng.random::<u32>() >> 7, 25).expect("bits");
    }
}

/// Decodes the same sequence of calls; returns the first error, if any.
fn decode_mixed(dec: &mut impl Decode) -> Result<(), Error> {
    let cat = Categorical::from_counts(&[50, 20, 5, 1, 1, 0, 3]).expect("model");
    let mut adaptive = AdaptiveFrequency::new(40).expect("model");
    let mut bit = AdaptiveBit::new();
    let t = tables(Family::Laplace);
    for i in 0..SYMBOLS {
        let s = dec.decode(&cat)?;
        assert!(s < 7 && s != 5, "decoded a zero-probability symbol {s}");
        assert!(dec.decode_adaptive(&mut adaptive)? < 40);
        dec.decode_bit_adaptive(&mut bit)?;
        dec.decode_integer(t.get(i % 64).expect("scale"))?;
        assert!(dec.decode_bits(25)? < 1 << 25);
    }
    Ok(())
}

fn range_bytes() -> Vec<u8> {
    let mut e = RangeEncoder::new();
    encode_mixed(&mut e);
    e.finish()
}

fn ans_bytes() -> Vec<u8> {
    let mut e = AnsEncoder::new();
    encode_mixed(&mut e);
    e.finish()
}

/// Full decode + finish check; `Ok` only if both pass.
fn try_range(bytes: &[u8]) -> Result<(), Error> {
    let mut d = RangeDecoder::new(bytes)?;
    decode_mixed(&mut d)?;
    d.finish()
}

fn try_ans(bytes: &[u8]) -> Result<(), Error> {
    let mut d = AnsDecoder::new(bytes)?;
    decode_mixed(&mut d)?;
    d.finish()
}

#[test]
fn intact_streams_decode() {
    try_range(&range_bytes()).expect("range");
    try_ans(&ans_bytes()).expect("ans");
}

#[test]
fn lengths_not_a_multiple_of_four_are_errors() {
    for bytes in [range_bytes(), ans_bytes()] {
        for cut in 1..4 {
            let b = &bytes[..bytes.len() - cut];
            assert!(matches!(RangeDecoder::new(b), Err(Error::Malformed(_))));
            assert!(matches!(AnsDecoder::new(b), Err(Error::Malformed(_))));
        }
    }
}

#[test]
fn ans_data_ending_in_a_zero_word_is_an_error() {
    let mut b = ans_bytes();
    b.extend_from_slice(&[0, 0, 0, 0]);
    assert!(matches!(AnsDecoder::new(&b), Err(Error::Malformed(_))));
}

#[test]
fn truncations_never_panic_and_are_mostly_detected() {
    for (name, bytes, decode) in [
        (
            "range",
            range_bytes(),
            try_range as fn(&[u8]) -> Result<(), Error>,
        ),
        (
            "ans",
            ans_bytes(),
            try_ans as fn(&[u8]) -> Result<(), Error>,
        ),
    ] {
        let words = bytes.len() / 4;
        let mut detected = 0;
        let mut tried = 0;
        for keep in (0..words).step_by(words / 200 + 1) {
            tried += 1;
            if decode(&bytes[..keep * 4]).is_err() {
                detected += 1;
            }
        }
        println!("{name}: {detected}/{tried} truncations detected");
        assert!(
            detected * 10 >= tried * 9,
            "{name}: only {detected}/{tried} truncations detected"
        );
    }
}

#[test]
fn bit_flips_and_random_bytes_never_panic() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for (name, bytes, decode) in [
        (
            "range",
            range_bytes(),
            try_range as fn(&[u8]) -> Result<(), Error>,
        ),
        (
            "ans",
            ans_bytes(),
            try_ans as fn(&[u8]) -> Result<(), Error>,
        ),
    ] {
        let mut detected = 0;
        for _ in 0..200 {
            let mut b = bytes.clone();
            let i = rng.random_range(0..b.len());
            b[i] ^= 1 << rng.random_range(0..8);
            if decode(&b).is_err() {
                detected += 1;
            }
        }
        // ANS resynchronises after a flipped word, so many flips go unnoticed by the
        // end marker (the container CRC catches them); only "no panic" is required.
        println!("{name}: {detected}/200 bit flips detected");
        for len in [0usize, 4, 8, 12, 64, 4096] {
            let b: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            let _ = decode(&b);
        }
        // All-ones / all-zeros words drive the decoders to their extremes.
        let _ = decode(&vec![0xFF; 1024]);
        let _ = decode(&[0, 0, 0, 1]);
    }
}

#[test]
fn exp_golomb_prefix_is_bounded() {
    // Bypass zero bits forever: the Exp-Golomb prefix decoder must stop with an error.
    let mut e = RangeEncoder::new();
    for _ in 0..40 {
        e.encode_bits(0, 1).expect("bit");
    }
    let b = e.finish();
    let mut d = RangeDecoder::new(&b).expect("decoder");
    assert!(matches!(d.decode_exp_golomb(), Err(Error::Malformed(_))));

    let mut e = AnsEncoder::new();
    for _ in 0..40 {
        e.encode_bits(0, 1).expect("bit");
    }
    let b = e.finish();
    let mut d = AnsDecoder::new(&b).expect("decoder");
    assert!(matches!(d.decode_exp_golomb(), Err(Error::Malformed(_))));

    // An escape whose magnitude overflows i32 is an error, not a wrap.
    let table = tables(Family::Gaussian).get(0).expect("scale");
    let mut e = RangeEncoder::new();
    e.encode(table.escape_symbol(), table).expect("escape");
    e.encode_bits(0, 1).expect("sign");
    e.encode_exp_golomb(u32::MAX).expect("huge");
    let b = e.finish();
    let mut d = RangeDecoder::new(&b).expect("decoder");
    assert!(matches!(d.decode_integer(table), Err(Error::Malformed(_))));
}

#[test]
fn encoder_argument_errors() {
    let cat = Categorical::from_counts(&[1, 0, 1]).expect("model");
    let mut e = RangeEncoder::new();
    assert!(matches!(
        e.encode(1, &cat),
        Err(Error::ImpossibleSymbol {
            symbol: 1,
            num_symbols: 3
        })
    ));
    assert!(matches!(
        e.encode(3, &cat),
        Err(Error::ImpossibleSymbol { .. })
    ));
    assert!(matches!(
        e.encode_bits(8, 3),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        e.encode_bits(0, 33),
        Err(Error::InvalidArgument(_))
    ));
    let mut a = AnsEncoder::new();
    assert!(a.encode(1, &cat).is_err());
    assert!(a.is_empty());
    assert!(Categorical::from_counts(&[]).is_err());
    assert!(Categorical::from_counts(&[0, 0]).is_err());
    assert!(Categorical::from_frequencies(&[1, 2]).is_err());
    assert!(Categorical::from_frequencies(&[1 << 23, 1 << 23]).is_ok());
    assert!(Categorical::uniform(0).is_err());
    assert!(AdaptiveFrequency::new(0).is_err());
    // Every symbol of a uniform model over the largest alphabet is codable.
    let u = Categorical::uniform(1 << 24).expect("uniform");
    let mut e = RangeEncoder::new();
    e.encode((1 << 24) - 1, &u).expect("last symbol");
    let b = e.finish();
    assert_eq!(
        RangeDecoder::new(&b)
            .expect("dec")
            .decode(&u)
            .expect("symbol"),
        (1 << 24) - 1
    );
}
