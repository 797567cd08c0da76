//! BD-rate reproduces a published pair: CompressAI's Kodak results for mbt2018-mean (MSE,
//! CPU inference) against VTM are about +21 % (CompressAI's model zoo and PEERS.md).
//!
//! Data: InterDigitalInc/CompressAI at commit 128f00397509b9882aaaeea49f43f1714da083b4,
//! `results/image/kodak/compressai-mbt2018-mean_mse_cpu.json` and
//! `results/image/kodak/vtm.json` (the "bpp", "psnr" and "ms-ssim" arrays, copied verbatim).

#![allow(clippy::unwrap_used)] // a panic in a test is a failure with its message

use lcodec_bench::bdrate::{RdPoint, bd_quality, bd_rate};

const MBT2018_MEAN_BPP: [f64; 8] = [
    0.12392171223958336,
    0.19798109266493058,
    0.3072441948784722,
    0.46061197916666674,
    0.6616651746961806,
    0.9144049750434027,
    1.2342088487413194,
    1.619089762369792,
];
const MBT2018_MEAN_PSNR: [f64; 8] = [
    27.699472968534337,
    29.358805876639696,
    31.128916719551516,
    32.95067527714903,
    34.96831704422008,
    36.91109403854906,
    38.83750942961362,
    40.63331397919807,
];
const MBT2018_MEAN_MS_SSIM: [f64; 8] = [
    0.9178414369622866,
    0.9430568714936575,
    0.9614850729703903,
    0.9752046962579092,
    0.983576275408268,
    0.9892503147323927,
    0.993048628171285,
    0.9953488285342852,
];
const VTM_BPP: [f64; 8] = [
    0.04824490017361111,
    0.11249542236328125,
    0.24581654866536465,
    0.4905454847547744,
    0.8748101128472224,
    1.43084971110026,
    2.3246070014105906,
    3.6326090494791665,
];
const VTM_PSNR: [f64; 8] = [
    26.14484539430146,
    28.493021754424603,
    31.199873720014093,
    34.26153257289846,
    37.419793158067485,
    40.42444421698711,
    43.505766973634486,
    46.59176008512777,
];
const VTM_MS_SSIM: [f64; 8] = [
    0.8606081604957581,
    0.9176909327507019,
    0.9561077281832695,
    0.9780782933036486,
    0.988776795566082,
    0.9938599988818169,
    0.9969479044278463,
    0.9986564020315806,
];

fn curve(rate: &[f64; 8], quality: &[f64; 8]) -> Vec<RdPoint> {
    rate.iter()
        .zip(quality)
        .map(|(&rate, &quality)| RdPoint { rate, quality })
        .collect()
}

#[test]
fn mbt2018_mean_against_vtm_is_plus_21_percent() {
    let vtm = curve(&VTM_BPP, &VTM_PSNR);
    let mbt = curve(&MBT2018_MEAN_BPP, &MBT2018_MEAN_PSNR);
    let bd = bd_rate(&vtm, &mbt).unwrap();
    println!("BD-rate (PSNR) mbt2018-mean vs VTM: {bd:+.3}%");
    assert!((bd - 21.0).abs() <= 0.3, "{bd}");
    // Swapping the roles flips the sign (not exactly symmetric: 1/(1+x) - 1).
    let back = bd_rate(&mbt, &vtm).unwrap();
    assert!(back < -15.0 && back > -19.0, "{back}");
    // At equal rate VTM is better, so BD-PSNR of mbt2018-mean is negative.
    let bdq = bd_quality(&vtm, &mbt).unwrap();
    println!("BD-PSNR mbt2018-mean vs VTM: {bdq:+.3} dB");
    assert!(bdq < 0.0);
}

#[test]
fn ms_ssim_curves_also_give_a_bd_rate() {
    let vtm = curve(&VTM_BPP, &VTM_MS_SSIM);
    let mbt = curve(&MBT2018_MEAN_BPP, &MBT2018_MEAN_MS_SSIM);
    let bd = bd_rate(&vtm, &mbt).unwrap();
    println!("BD-rate (MS-SSIM) mbt2018-mean vs VTM: {bd:+.3}%");
    assert!(bd.is_finite());
}
