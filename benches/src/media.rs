//! Reading and writing the media the sweep compares: 8-bit RGB images (PNG/PNM via the
//! `image` crate), PCM WAV audio and YUV 4:2:0 Y4M video (small parsers of our own).

use anyhow::{Context, bail};

use crate::metrics::Image8;

/// Decodes PNG / PNM bytes to 8-bit RGB (grey is expanded, alpha dropped, 16-bit rounded).
///
/// # Errors
/// Unknown or malformed image data.
pub fn decode_rgb8(bytes: &[u8]) -> anyhow::Result<Image8> {
    let img = image::load_from_memory(bytes).context("decoding image")?;
    let rgb = img.to_rgb8();
    let (w, h) = rgb.dimensions();
    Ok(Image8 {
        width: w as usize,
        height: h as usize,
        channels: 3,
        data: rgb.into_raw(),
    })
}

/// Binary PPM (P6) bytes of an RGB image.
pub fn ppm_bytes(img: &Image8) -> Vec<u8> {
    let mut out = format!("P6\n{} {}\n255\n", img.width, img.height).into_bytes();
    out.extend_from_slice(&img.data);
    out
}

/// PNG bytes of an RGB image.
///
/// # Errors
/// Encoder errors (dimensions out of range).
pub fn png_bytes(img: &Image8) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    let enc = image::codecs::png::PngEncoder::new(&mut out);
    image::ImageEncoder::write_image(
        enc,
        &img.data,
        img.width as u32,
        img.height as u32,
        image::ExtendedColorType::Rgb8,
    )
    .context("encoding PNG")?;
    Ok(out)
}

/// PCM audio, samples interleaved and scaled to [-1, 1].
#[derive(Debug, Clone)]
pub struct Audio {
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// Channels.
    pub channels: u16,
    /// Bits per stored sample (16, 24, 32).
    pub bits: u16,
    /// Interleaved samples.
    pub samples: Vec<f64>,
}

impl Audio {
    /// Frames (samples per channel).
    pub fn frames(&self) -> usize {
        self.samples.len() / usize::from(self.channels.max(1))
    }
    /// Duration in seconds.
    pub fn seconds(&self) -> f64 {
        self.frames() as f64 / f64::from(self.sample_rate.max(1))
    }
}

fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Parses a RIFF/WAVE file with integer PCM (16/24/32-bit) or 32-bit float samples.
///
/// # Errors
/// Not a WAV file, an unsupported format, truncated chunks.
pub fn parse_wav(b: &[u8]) -> anyhow::Result<Audio> {
    if b.len() < 12 || &b[0..4] != b"RIFF" || &b[8..12] != b"WAVE" {
        bail!("not a RIFF/WAVE file");
    }
    let mut pos = 12;
    let mut fmt: Option<(u16, u16, u32, u16)> = None;
    while pos + 8 <= b.len() {
        let id = &b[pos..pos + 4];
        let len = le32(b, pos + 4).context("chunk length")? as usize;
        let body_start = pos + 8;
        // A data chunk may claim more than the file holds (streamed WAVs): clamp.
        let body_end = body_start.saturating_add(len).min(b.len());
        let body = &b[body_start..body_end];
        if id == b"fmt " {
            let mut tag = le16(body, 0).context("fmt tag")?;
            let channels = le16(body, 2).context("fmt channels")?;
            let rate = le32(body, 4).context("fmt rate")?;
            let bits = le16(body, 14).context("fmt bits")?;
            if tag == 0xFFFE {
                tag = le16(body, 24).context("extensible sub-format")?;
            }
            fmt = Some((tag, channels, rate, bits));
        } else if id == b"data" {
            let (tag, channels, sample_rate, bits) = fmt.context("data chunk before fmt chunk")?;
            if channels == 0 {
                bail!("WAV with 0 channels");
            }
            let samples = match (tag, bits) {
                (1, 16) => body
                    .chunks_exact(2)
                    .map(|c| f64::from(i16::from_le_bytes([c[0], c[1]])) / 32768.0)
                    .collect(),
                (1, 24) => body
                    .chunks_exact(3)
                    .map(|c| {
                        f64::from(i32::from_le_bytes([0, c[0], c[1], c[2]]) >> 8) / 8_388_608.0
                    })
                    .collect(),
                (1, 32) => body
                    .chunks_exact(4)
                    .map(|c| {
                        f64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])) / 2_147_483_648.0
                    })
                    .collect(),
                (3, 32) => body
                    .chunks_exact(4)
                    .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                    .collect(),
                _ => bail!("unsupported WAV format tag {tag} with {bits} bits"),
            };
            return Ok(Audio {
                sample_rate,
                channels,
                bits,
                samples,
            });
        }
        pos = body_start.saturating_add(len + (len & 1));
    }
    bail!("WAV without a data chunk")
}

/// YUV 4:2:0 8-bit video.
#[derive(Debug, Clone)]
pub struct Video {
    /// Luma width.
    pub width: usize,
    /// Luma height.
    pub height: usize,
    /// Frame rate numerator / denominator.
    pub fps: (u32, u32),
    /// Frames, each Y then U then V planes (`w·h + 2·⌈w/2⌉·⌈h/2⌉` bytes).
    pub frames: Vec<Vec<u8>>,
}

impl Video {
    /// Chroma plane size.
    pub fn chroma(&self) -> (usize, usize) {
        (self.width.div_ceil(2), self.height.div_ceil(2))
    }
}

/// Parses a YUV4MPEG2 stream with 4:2:0 chroma (`C420`, `C420jpeg`, `C420mpeg2`, `C420paldv`
/// or no tag); unknown `X…` tokens are skipped.
///
/// # Errors
/// Not Y4M, other chroma formats, truncated frames.
pub fn parse_y4m(b: &[u8]) -> anyhow::Result<Video> {
    let nl = b
        .iter()
        .position(|&c| c == b'\n')
        .context("Y4M header has no newline")?;
    let header = std::str::from_utf8(&b[..nl]).context("Y4M header is not text")?;
    let mut tokens = header.split_ascii_whitespace();
    if tokens.next() != Some("YUV4MPEG2") {
        bail!("not a YUV4MPEG2 stream");
    }
    let (mut w, mut h, mut fps) = (0usize, 0usize, (25u32, 1u32));
    for t in tokens {
        let (k, v) = t.split_at(1);
        match k {
            "W" => w = v.parse().context("Y4M width")?,
            "H" => h = v.parse().context("Y4M height")?,
            "F" => {
                let (n, d) = v.split_once(':').context("Y4M frame rate")?;
                fps = (n.parse().context("Y4M fps")?, d.parse().context("Y4M fps")?);
            }
            "C" if !v.starts_with("420") => bail!("Y4M chroma {v} is not supported (4:2:0 only)"),
            _ => {}
        }
    }
    if w == 0 || h == 0 || w > 16384 || h > 16384 {
        bail!("Y4M size {w}x{h} out of range");
    }
    let frame_len = w * h + 2 * w.div_ceil(2) * h.div_ceil(2);
    let mut frames = Vec::new();
    let mut pos = nl + 1;
    while pos < b.len() {
        let nl = b[pos..]
            .iter()
            .position(|&c| c == b'\n')
            .context("truncated FRAME header")?;
        if !b[pos..].starts_with(b"FRAME") {
            bail!("expected FRAME at offset {pos}");
        }
        pos += nl + 1;
        let data = b
            .get(pos..pos + frame_len)
            .with_context(|| format!("truncated frame {}", frames.len()))?;
        frames.push(data.to_vec());
        pos += frame_len;
    }
    Ok(Video {
        width: w,
        height: h,
        fps,
        frames,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wav_round_trip_of_a_small_file() {
        let samples: [i16; 4] = [0, 16384, -32768, 32767];
        let mut b = Vec::new();
        b.extend_from_slice(b"RIFF");
        b.extend_from_slice(&(36u32 + 8).to_le_bytes());
        b.extend_from_slice(b"WAVEfmt ");
        b.extend_from_slice(&16u32.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&2u16.to_le_bytes());
        b.extend_from_slice(&8000u32.to_le_bytes());
        b.extend_from_slice(&32000u32.to_le_bytes());
        b.extend_from_slice(&4u16.to_le_bytes());
        b.extend_from_slice(&16u16.to_le_bytes());
        b.extend_from_slice(b"data");
        b.extend_from_slice(&8u32.to_le_bytes());
        for s in samples {
            b.extend_from_slice(&s.to_le_bytes());
        }
        let a = parse_wav(&b).unwrap();
        assert_eq!(
            (a.sample_rate, a.channels, a.bits, a.frames()),
            (8000, 2, 16, 2)
        );
        assert_eq!(a.samples, vec![0.0, 0.5, -1.0, 32767.0 / 32768.0]);
        assert!(parse_wav(&b[..20]).is_err());
        assert!(parse_wav(b"RIFX").is_err());
    }

    #[test]
    fn y4m_parses_and_rejects_truncation() {
        let mut b = b"YUV4MPEG2 W4 H2 F30:1 Ip A1:1 C420jpeg XYSCSS=420JPEG\n".to_vec();
        for f in 0..2u8 {
            b.extend_from_slice(b"FRAME\n");
            b.extend(std::iter::repeat_n(f, 4 * 2 + 2 * 2));
        }
        let v = parse_y4m(&b).unwrap();
        assert_eq!(
            (v.width, v.height, v.fps, v.frames.len()),
            (4, 2, (30, 1), 2)
        );
        assert!(parse_y4m(&b[..b.len() - 1]).is_err());
        assert!(parse_y4m(b"YUV4MPEG2 W4 H2 C444\n").is_err());
    }

    #[test]
    fn ppm_and_png_encode_what_decode_reads() {
        let img = Image8 {
            width: 3,
            height: 2,
            channels: 3,
            data: (0..18).map(|v| v * 13).collect(),
        };
        assert_eq!(decode_rgb8(&ppm_bytes(&img)).unwrap(), img);
        assert_eq!(decode_rgb8(&png_bytes(&img).unwrap()).unwrap(), img);
        assert!(decode_rgb8(b"not an image").is_err());
    }
}
