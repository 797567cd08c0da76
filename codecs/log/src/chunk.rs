//! One chunk of log lines: split into lines, cluster into templates, and code the line
//! structure and every variable with the context-mixing coder.
//!
//! Chunk payload (all integers LEB128 unless said otherwise):
//! ```text
//! mode u8: 0 = stored, 1 = zstd frame, 2 = structured (context mixing, `mode=max`),
//!          3 = fast (zstd columns), 4 = columns (the default; see `col.rs`)
//! structured: n_lines, flags u8 (bit 0: the chunk ends with '\n'), table_bits u8,
//!             side_len, side (zstd frame of the bytes of very long lines), cm bytes
//! ```
//! The context-mixing stream holds, per line: the template symbol (2 bytes: 0 raw line,
//! 1 long line, 2 + k template k; k equal to the number of templates so far introduces a
//! new template, whose definition follows), a CR flag, then the line's variables (each
//! ended by '\n', which no token contains), the raw line, or a long line's length.

use lcodec_core::{Error, Result};

use crate::cm::{ByteCoder, Coder, Decoder, Encoder, NCTX, NM, hc};
use crate::template::{Clusterer, MAX_TOKENS, Template, finalize_templates, tokenize};

type ColStats = std::collections::HashMap<(u32, u32), (f64, u64, Vec<String>)>;
thread_local! {
    static DROP: Option<usize> = std::env::var("LOG_DROP").ok().and_then(|v| v.parse().ok());
    static LINKSTAT: std::cell::RefCell<(u64, u64)> = const { std::cell::RefCell::new((0, 0)) };
    static COLSTATS: std::cell::RefCell<ColStats> = std::cell::RefCell::new(ColStats::new());
}

/// Lines longer than this go to the side stream.
const LONG_LINE: usize = 16 << 10;
/// Most templates per chunk.
const MAX_TEMPLATES: usize = 60_000;
/// Token positions with a "previous line" context.
const GSLOTS: usize = 64;

const TDEF_PREV: bool = true;
pub(crate) const MODE_STORED: u8 = 0;
const MODE_ZSTD: u8 = 1;
const MODE_STRUCT: u8 = 2;
const MODE_FAST: u8 = 3;
const MODE_COL: u8 = 4;
/// `columns` with ring copies teaching their column (see `col::ring_seen`).
pub(crate) const MODE_COL2: u8 = 5;

pub(crate) const SYM_RAW: u32 = 0;
pub(crate) const SYM_LONG: u32 = 1;
pub(crate) const SYM_BASE: u32 = 2;

// Kinds of coded bytes (mixer selector / SSE classes).
const K_VAR: u32 = 0;
const SELQ: u32 = 0;
const K_RAW: u32 = 1;
const K_TDEF: u32 = 2;
const K_META: u32 = 3;

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn get_varint(src: &[u8], pos: &mut usize) -> Result<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *src
            .get(*pos)
            .ok_or_else(|| Error::codec("log", "chunk header truncated"))?;
        *pos += 1;
        v |= ((b & 0x7F) as u64) << shift;
        if b < 0x80 {
            return Ok(v);
        }
    }
    Err(Error::codec("log", "varint too long"))
}

/// Whether the chunk looks like binary data rather than text lines.
fn looks_binary(data: &[u8]) -> bool {
    let ctrl = data
        .iter()
        .filter(|&&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0C | 0x1B))
        .count();
    let lines = data.iter().filter(|&&b| b == b'\n').count() + 1;
    ctrl * 100 > data.len() || data.len() / lines > 4096
}

pub(crate) fn zstd_compress(data: &[u8]) -> Result<Vec<u8>> {
    Ok(zstd::bulk::compress(data, 19)?)
}

pub(crate) fn zstd_decompress(data: &[u8], max: usize) -> Result<Vec<u8>> {
    let mut d = zstd::bulk::Decompressor::new()?;
    let mut out = Vec::new();
    out.try_reserve_exact(max)
        .map_err(|_| Error::Limit(format!("log: cannot allocate {max} bytes")))?;
    d.decompress_to_buffer(data, &mut out)
        .map_err(|e| Error::codec("log", format!("zstd: {e}")))?;
    Ok(out)
}

/// Table size for a chunk of `len` bytes.
fn table_bits(len: usize) -> u8 {
    let lg = usize::BITS - len.max(1).leading_zeros();
    let add = if crate::cm::STATS {
        std::env::var("LOG_TB")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(4)
    } else {
        4
    };
    (lg + add).clamp(18, 24) as u8
}

/// Context state shared by encoder and decoder.
struct State {
    prev_sym: [u32; 3],
    prev_cr: bool,
    /// Per template, per token position: the last value seen there.
    tlast: Vec<Vec<Vec<u8>>>,
    /// Per template, per token position: an earlier position that held the same value.
    tlink: Vec<Vec<u16>>,
    /// The template defined last.
    last_tdef: Template,
    /// Per token position: the previous line's token.
    glast: Vec<Vec<u8>>,
    raw_last: Vec<u8>,
    prev_line: Vec<u8>,
    h8: u64,
    /// History of coded text bytes and the match model over it.
    mm: crate::matcher::Matcher,
    /// Hashes of the current and previous word.
    word: u32,
    pword: u32,
}

const MTAB_BITS: u32 = 20;
const MINLEN: usize = 6;

impl State {
    fn new() -> Self {
        State {
            prev_sym: [0; 3],
            prev_cr: false,
            tlast: Vec::new(),
            tlink: Vec::new(),
            last_tdef: Vec::new(),
            glast: vec![Vec::new(); GSLOTS],
            raw_last: Vec::new(),
            prev_line: Vec::new(),
            h8: 0,
            mm: crate::matcher::Matcher::new(MTAB_BITS, MINLEN),
            word: 0,
            pword: 0,
        }
    }

    /// Expected next byte from the history match model.
    fn match_expect(&self) -> i32 {
        if self.mm.len > 0 {
            self.mm.hist[self.mm.ptr] as i32
        } else {
            -1
        }
    }

    /// Appends a coded text byte to the history and updates the match model and words.
    fn push_hist(&mut self, b: u8) {
        self.mm.push(b);
        if b.is_ascii_alphanumeric() || b >= 0x80 {
            self.word = hc(self.word, b as u32);
        } else if self.word != 0 {
            self.pword = self.word;
            self.word = 0;
        }
    }
}

fn is_delim(b: u8) -> bool {
    !(b.is_ascii_alphanumeric() || b >= 0x80)
}

/// Starts of the sub-fields of `v` (split after each punctuation byte).
fn subfield_starts(v: &[u8]) -> Vec<usize> {
    let mut s = vec![0];
    for (i, &b) in v.iter().enumerate() {
        if is_delim(b) {
            s.push(i + 1);
        }
    }
    s
}

/// The byte of `v` aligned with sub-field `k`, offset `j` (or '\n' at its end, -1 past it).
fn aligned(v: &[u8], starts: &[usize], k: usize, j: usize) -> i32 {
    match starts.get(k) {
        Some(&s) => match v.get(s + j) {
            Some(&b) => b as i32,
            None if s + j == v.len() => b'\n' as i32,
            None => -1,
        },
        None => -1,
    }
}

/// Where a value is and what it can be predicted from.
struct ValueCtx<'v> {
    kind: u32,
    col: u32,
    gcol: u32,
    vt: &'v [u8],
    vg: &'v [u8],
    /// The value of an earlier field of this line that equalled this one last time.
    vl: Option<&'v [u8]>,
}

fn hash_bytes(b: &[u8]) -> u32 {
    let mut h = 0x811C_9DC5u32;
    for &c in b {
        h = (h ^ c as u32).wrapping_mul(0x0100_0193);
    }
    h
}

/// Codes one value terminated by '\n'. On decode `val` is ignored; returns the value.
/// `budget` bounds the value length on decode.
fn code_value(
    bc: &mut ByteCoder<'_>,
    st: &mut State,
    val: &[u8],
    vc: &ValueCtx<'_>,
    budget: usize,
) -> Result<Vec<u8>> {
    let enc = matches!(bc.coder, Coder::Enc(_));
    let mut out = Vec::new();
    let mut ph = hc(vc.col, 0x5EED);
    let vth = hash_bytes(vc.vt);
    let st_t = subfield_starts(vc.vt);
    let st_g = subfield_starts(vc.vg);
    let st_l = vc.vl.map(subfield_starts).unwrap_or_default();
    let mut run = [0u32; NM];
    let mut cmp = 0u32;
    let (mut k, mut j) = (0usize, 0usize);
    let mut i = 0usize;
    loop {
        let b = if enc {
            val.get(i).copied().unwrap_or(b'\n')
        } else {
            0
        };
        let c1 = (st.h8 & 0xFF) as u32;
        let c2 = (st.h8 & 0xFFFF) as u32;
        let c4 = (st.h8 & 0xFFFF_FFFF) as u32;
        let et = aligned(vc.vt, &st_t, k, j);
        let eg = aligned(vc.vg, &st_g, k, j);
        let em = st.match_expect();
        let el = vc.vl.map_or(-1, |v| aligned(v, &st_l, k, j));
        // Order of the digits so far against the aligned previous value: 0 equal, 1 above, 2 below.
        if j == 0 {
            cmp = 0;
        }
        let ip = (k.min(15) as u32) << 5 | j.min(31) as u32;
        let kk = vc.kind << 24;
        let ctx: [u32; NCTX] = [
            hc(hc(vc.col, ip), kk | 1),
            hc(hc(vc.col, c1), kk | 2),
            hc(hc(vc.col, c2), kk | 3),
            hc(hc(hc(hc(vc.col, et as u32), c1), cmp), kk | 5),
            hc(hc(hc(vc.gcol, eg as u32), c1 | ip << 8), kk | 6),
            hc(c4, 7),
            hc(hc(hc(vc.col, vth), ph), kk | 9),
            hc(kk, 10),
        ];
        let mut ctx = ctx;
        if crate::cm::STATS {
            if let Some(d) = DROP.with(|d| *d) {
                ctx[d] = 0;
            }
        }
        let sel = vc.kind * 8 + (i.min(7) as u32) * SELQ;
        let apm = vc.kind * 4 + (i.min(3) as u32);
        let mrun = if em >= 0 { st.mm.len.min(15) + 16 } else { 0 };
        let sel2 = (vc.col >> 22) ^ (vc.kind << 8);
        let got = bc.byte(
            b,
            &ctx,
            sel,
            sel2,
            [et, eg, em, el],
            [run[0], run[1], mrun, run[3]],
            apm,
        );
        run[0] = if et == got as i32 { run[0] + 1 } else { 0 };
        run[1] = if eg == got as i32 { run[1] + 1 } else { 0 };
        run[3] = if el == got as i32 { run[3] + 1 } else { 0 };
        if crate::cm::STATS && el >= 0 {
            LINKSTAT.with(|l| {
                let mut l = l.borrow_mut();
                l.0 += 1;
                l.1 += (el == got as i32) as u64;
            });
        }
        if cmp == 0 && et >= 0 && got as i32 != et {
            cmp = if got as i32 > et { 1 } else { 2 };
        }
        st.h8 = (st.h8 << 8) | got as u64;
        st.push_hist(got);
        if got == b'\n' {
            return Ok(out);
        }
        if out.len() >= budget {
            return Err(Error::codec("log", "value longer than the chunk"));
        }
        out.push(got);
        ph = hc(ph, got as u32);
        if is_delim(got) {
            k += 1;
            j = 0;
        } else {
            j += 1;
        }
        i += 1;
    }
}

/// Codes a small integer (template symbol, counts) as `nbytes` big-endian bytes.
fn code_meta(bc: &mut ByteCoder<'_>, st: &mut State, v: u32, nbytes: u32, what: u32) -> u32 {
    let mut r = 0u32;
    let p = st.prev_sym;
    for j in (0..nbytes).rev() {
        let b = ((v >> (8 * j)) & 0xFF) as u8;
        let w = what << 8 | j << 4;
        let hi = r;
        let ctx: [u32; NCTX] = [
            hc(hc(w, hi), 11),
            hc(hc(hc(w, hi), p[0]), 12),
            hc(hc(hc(hc(w, hi), p[0]), p[1]), 13),
            hc(hc(hc(hc(hc(w, hi), p[0]), p[1]), p[2]), 14),
            hc(hc(hc(w, hi), st.prev_cr as u32), 15),
            hc(hc(hc(w, hi), hash_bytes(st.glast[0].as_slice())), 16),
            hc(hc(hc(w, hi), hash_bytes(st.glast[1].as_slice())), 18),
            hc(
                hc(hc(hc(w, hi), p[0]), hash_bytes(st.glast[1].as_slice())),
                19,
            ),
        ];
        let e0 = ((p[0] >> (8 * j)) & 0xFF) as i32;
        let e1 = ((p[1] >> (8 * j)) & 0xFF) as i32;
        let sel = K_META * 8 + (what & 3) * 2 + (j & 1);
        let got = bc.byte(
            b,
            &ctx,
            sel,
            1000 + what * 2 + (j & 1),
            [e0, e1, -1, -1],
            [8, 8, 0, 0],
            K_META * 4 + (what & 3),
        );
        st.h8 = (st.h8 << 8) | got as u64;
        r = (r << 8) | got as u32;
    }
    r
}

/// A line as the encoder sees it.
pub(crate) enum LineKind {
    Raw,
    Long,
    Tmpl(u32),
}

/// Encodes one chunk.
///
/// # Errors
/// Compressor errors.
pub fn encode_chunk(data: &[u8], mode: crate::Mode) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    if data.is_empty() {
        out.push(MODE_STORED);
        return Ok(out);
    }
    if looks_binary(data) {
        let z = zstd_compress(data)?;
        if z.len() < data.len() {
            out.push(MODE_ZSTD);
            out.extend_from_slice(&z);
        } else {
            out.push(MODE_STORED);
            out.extend_from_slice(data);
        }
        return Ok(out);
    }
    let final_nl = data.last() == Some(&b'\n');
    let body = if final_nl {
        &data[..data.len() - 1]
    } else {
        data
    };
    let mut lines: Vec<&[u8]> = body.split(|&b| b == b'\n').collect();
    let mut crs = Vec::with_capacity(lines.len());
    for l in lines.iter_mut() {
        let cr = l.last() == Some(&b'\r');
        if cr {
            *l = &l[..l.len() - 1];
        }
        crs.push(cr);
    }
    // Tokenise and cluster.
    let mut toks: Vec<Vec<(u32, u32)>> = Vec::with_capacity(lines.len());
    let mut kinds: Vec<LineKind> = Vec::with_capacity(lines.len());
    let mut assign: Vec<Option<u32>> = Vec::with_capacity(lines.len());
    let mut cl = Clusterer::new(MAX_TEMPLATES);
    let mut t = Vec::new();
    for l in &lines {
        if l.len() > LONG_LINE {
            toks.push(Vec::new());
            kinds.push(LineKind::Long);
            assign.push(None);
            continue;
        }
        tokenize(l, &mut t);
        if t.len() > MAX_TOKENS {
            toks.push(Vec::new());
            kinds.push(LineKind::Raw);
            assign.push(None);
            continue;
        }
        let force_raw = crate::cm::STATS && std::env::var("LOG_RAW").is_ok();
        let c = if force_raw { None } else { cl.add(l, &t) };
        kinds.push(match c {
            Some(c) => LineKind::Tmpl(c),
            None => LineKind::Raw,
        });
        assign.push(c);
        toks.push(t.clone());
    }
    let tok_of = |li: usize, p: usize| -> &[u8] {
        let (a, b) = toks[li][p];
        &lines[li][a as usize..b as usize]
    };
    let templates = finalize_templates(cl.len(), &assign, &tok_of, &|li| toks[li].len());

    if crate::cm::STATS && std::env::var("LOG_TEMPLATES").is_ok() {
        let mut cnt = vec![0usize; templates.len()];
        for a in assign.iter().flatten() {
            cnt[*a as usize] += 1;
        }
        for (i, t) in templates.iter().enumerate() {
            let s: Vec<String> = t
                .iter()
                .map(|x| {
                    x.as_ref()
                        .map_or("<*>".into(), |v| String::from_utf8_lossy(v).into_owned())
                })
                .collect();
            eprintln!("T{i} x{}: {}", cnt[i], s.join(" "));
        }
    }
    match mode {
        crate::Mode::Fast(level) => {
            return encode_fast(
                data, level, &lines, &crs, &kinds, &toks, &templates, final_nl,
            );
        }
        crate::Mode::Columns => {
            return crate::col::encode_col(
                data, &lines, &crs, &kinds, &toks, &templates, final_nl, MODE_COL2,
            );
        }
        crate::Mode::Max => {}
    }
    let bits = table_bits(data.len());
    let mut bc = ByteCoder::new(bits as u32, Coder::Enc(Encoder::new()));
    let mut st = State::new();
    let mut side = Vec::new();
    let mut n_defined = 0u32;
    for (li, l) in lines.iter().enumerate() {
        match kinds[li] {
            LineKind::Raw => {
                code_meta(&mut bc, &mut st, SYM_RAW, 2, 0);
                code_cr(&mut bc, &mut st, crs[li], SYM_RAW);
                let raw_last = std::mem::take(&mut st.raw_last);
                let prev = std::mem::take(&mut st.prev_line);
                let vc = ValueCtx {
                    kind: K_RAW,
                    col: 0xAAAA,
                    gcol: 0xBBBB,
                    vt: &raw_last,
                    vg: &prev,
                    vl: None,
                };
                code_value(&mut bc, &mut st, l, &vc, usize::MAX)?;
                st.raw_last = l.to_vec();
                end_line(&mut st, SYM_RAW, l, &[]);
            }
            LineKind::Long => {
                code_meta(&mut bc, &mut st, SYM_LONG, 2, 0);
                code_cr(&mut bc, &mut st, crs[li], SYM_LONG);
                code_meta(&mut bc, &mut st, l.len() as u32, 4, 1);
                side.extend_from_slice(l);
                end_line(&mut st, SYM_LONG, &[], &[]);
            }
            LineKind::Tmpl(c) => {
                let sym = SYM_BASE + c;
                code_meta(&mut bc, &mut st, sym, 2, 0);
                let tm = &templates[c as usize];
                if c == n_defined {
                    code_template(&mut bc, &mut st, Some(tm), usize::MAX)?;
                    st.tlast.push(vec![Vec::new(); tm.len()]);
                    st.tlink.push(vec![u16::MAX; tm.len()]);
                    n_defined += 1;
                }
                code_cr(&mut bc, &mut st, crs[li], sym);
                let tk: Vec<&[u8]> = (0..toks[li].len()).map(|p| tok_of(li, p)).collect();
                code_vars(&mut bc, &mut st, c, tm, Some(&tk), usize::MAX)?;
                end_line(&mut st, sym, l, &tk);
            }
        }
    }
    if crate::cm::STATS && std::env::var("LOG_COLS").is_ok() {
        COLSTATS.with(|m| {
            let mut v: Vec<_> = m.borrow_mut().drain().collect();
            v.sort_by(|a, b| b.1.0.total_cmp(&a.1.0));
            for ((c, p), (bits, n, ex)) in v.iter().take(25) {
                eprintln!(
                    "T{c}.{p}: {:.0} bits / {n} = {:.1} per value  e.g. {:?}",
                    bits,
                    bits / *n as f64,
                    ex
                );
            }
        });
    }
    if crate::cm::STATS {
        LINKSTAT.with(|l| eprintln!("link predictions {:?}", l.borrow()));
        eprintln!(
            "lines {} templates {} | bytes/bits var {}/{:.0} raw {}/{:.0} tdef {}/{:.0} meta {}/{:.0}",
            lines.len(),
            n_defined,
            bc.count[0],
            bc.cost[0],
            bc.count[1],
            bc.cost[1],
            bc.count[2],
            bc.cost[2],
            bc.count[3],
            bc.cost[3]
        );
    }
    let Coder::Enc(e) = bc.coder else {
        return Err(Error::codec("log", "internal: coder state"));
    };
    let cm = e.finish();
    out.push(MODE_STRUCT);
    put_varint(&mut out, lines.len() as u64);
    out.push(final_nl as u8);
    out.push(bits);
    let side_z = if side.is_empty() {
        Vec::new()
    } else {
        zstd_compress(&side)?
    };
    put_varint(&mut out, side_z.len() as u64);
    out.extend_from_slice(&side_z);
    out.extend_from_slice(&cm);
    if out.len() > data.len() + 1 {
        out.clear();
        out.push(MODE_STORED);
        out.extend_from_slice(data);
    }
    Ok(out)
}

fn code_cr(bc: &mut ByteCoder<'_>, st: &mut State, cr: bool, sym: u32) -> bool {
    let ctx = (st.prev_cr as usize) | ((sym as usize & 2047) << 1);
    let got = bc.flag(cr, ctx);
    st.prev_cr = got;
    got
}

fn end_line(st: &mut State, sym: u32, line: &[u8], toks: &[&[u8]]) {
    st.prev_sym = [sym, st.prev_sym[0], st.prev_sym[1]];
    if !toks.is_empty() {
        for (p, t) in toks.iter().enumerate().take(GSLOTS) {
            st.glast[p].clear();
            st.glast[p].extend_from_slice(t);
        }
    }
    st.prev_line.clear();
    st.prev_line.extend_from_slice(line);
}

/// Codes a template definition; returns it (decoded on decode).
/// `budget` bounds the total constant bytes on decode (the defining line contains them all).
fn code_template(
    bc: &mut ByteCoder<'_>,
    st: &mut State,
    tm: Option<&Template>,
    mut budget: usize,
) -> Result<Template> {
    let n = tm.map_or(0, |t| t.len() as u32);
    let n = code_meta(bc, st, n, 1, 2) as usize;
    if n == 0 {
        return Err(Error::codec("log", "template with no tokens"));
    }
    let mut res: Template = Vec::with_capacity(n);
    for p in 0..n {
        let is_const = tm.is_some_and(|t| t[p].is_some()) as u32;
        let is_const = code_meta(bc, st, is_const, 1, 3) != 0;
        if is_const {
            let empty = Vec::new();
            let val = tm.and_then(|t| t[p].as_ref()).unwrap_or(&empty);
            let g = if p < GSLOTS {
                std::mem::take(&mut st.glast[p])
            } else {
                Vec::new()
            };
            let empty = Vec::new();
            let prev_def = st
                .last_tdef
                .get(p)
                .and_then(|t| t.as_ref())
                .unwrap_or(&empty);
            let vt = if TDEF_PREV {
                prev_def.clone()
            } else {
                g.clone()
            };
            let vc = ValueCtx {
                kind: K_TDEF,
                col: 0xCCCC,
                gcol: hc(0xDDDD, p as u32),
                vt: &vt,
                vg: &g,
                vl: None,
            };
            let v = code_value(bc, st, val, &vc, budget.min(LONG_LINE));
            if let Ok(v) = &v {
                budget = budget.saturating_sub(v.len() + 1);
            }
            if p < GSLOTS {
                st.glast[p] = g;
            }
            res.push(Some(v?));
        } else {
            res.push(None);
        }
    }
    st.last_tdef = res.clone();
    Ok(res)
}

/// Codes the variables of a templated line; on decode returns the tokens.
fn code_vars(
    bc: &mut ByteCoder<'_>,
    st: &mut State,
    c: u32,
    tm: &Template,
    toks: Option<&[&[u8]]>,
    mut budget: usize,
) -> Result<Vec<Vec<u8>>> {
    let mut res = Vec::with_capacity(tm.len());
    for (p, slot) in tm.iter().enumerate() {
        match slot {
            Some(v) => res.push(v.clone()),
            None => {
                let val: &[u8] = toks.map_or(&[], |t| t[p]);
                let vt = std::mem::take(&mut st.tlast[c as usize][p]);
                let vg = if p < GSLOTS {
                    std::mem::take(&mut st.glast[p])
                } else {
                    Vec::new()
                };
                let col = hc(hc(c, p as u32), 0x7777);
                let gcol = hc(p as u32, 0x8888);
                let link = st.tlink[c as usize][p];
                let vl = res.get(link as usize).map(Vec::as_slice);
                let vc = ValueCtx {
                    kind: K_VAR,
                    col,
                    gcol,
                    vt: &vt,
                    vg: &vg,
                    vl,
                };
                let before = bc.cost[0];
                let got = code_value(bc, st, val, &vc, budget)?;
                // All values of a line are in the output: bound their sum, not each one.
                budget = budget.saturating_sub(got.len() + 1);
                if crate::cm::STATS {
                    COLSTATS.with(|m| {
                        let mut m = m.borrow_mut();
                        let e = m.entry((c, p as u32)).or_insert((0.0, 0, Vec::new()));
                        e.0 += bc.cost[0] - before;
                        e.1 += 1;
                        if e.2.len() < 5 {
                            e.2.push(String::from_utf8_lossy(&got).into_owned());
                        }
                    });
                }
                if p < GSLOTS {
                    st.glast[p] = vg;
                }
                st.tlast[c as usize][p] = got.clone();
                res.push(got);
            }
        }
    }
    // Learn which fields repeat an earlier field of the same line.
    let links = &mut st.tlink[c as usize];
    for (p, slot) in tm.iter().enumerate() {
        links[p] = u16::MAX;
        if slot.is_none() && res[p].len() >= 2 {
            if let Some(q) = (0..p).find(|&q| tm[q].is_none() && res[q] == res[p]) {
                links[p] = q as u16;
            }
        }
    }
    Ok(res)
}

/// Decodes one chunk that must expand to `raw_len` bytes.
///
/// # Errors
/// [`Error::Codec`] for a malformed payload.
pub fn decode_chunk(payload: &[u8], raw_len: usize) -> Result<Vec<u8>> {
    let (&mode, rest) = payload
        .split_first()
        .ok_or_else(|| Error::codec("log", "empty chunk payload"))?;
    match mode {
        MODE_STORED => return Ok(rest.to_vec()),
        MODE_ZSTD => return zstd_decompress(rest, raw_len),
        MODE_STRUCT => {}
        MODE_FAST => return decode_fast(rest, raw_len),
        MODE_COL => return crate::col::decode_col(rest, raw_len, false),
        MODE_COL2 => return crate::col::decode_col(rest, raw_len, true),
        m => return Err(Error::codec("log", format!("unknown chunk mode {m}"))),
    }
    let mut pos = 0usize;
    let n_lines = get_varint(rest, &mut pos)?;
    if n_lines > raw_len as u64 + 1 {
        return Err(Error::codec(
            "log",
            format!("{n_lines} lines in a chunk of {raw_len} bytes"),
        ));
    }
    let flags = *rest
        .get(pos)
        .ok_or_else(|| Error::codec("log", "chunk header truncated"))?;
    let bits = *rest
        .get(pos + 1)
        .ok_or_else(|| Error::codec("log", "chunk header truncated"))?;
    pos += 2;
    if !(18..=24).contains(&bits) {
        return Err(Error::codec(
            "log",
            format!("table size 2^{bits} out of range"),
        ));
    }
    let side_len = get_varint(rest, &mut pos)? as usize;
    if side_len > rest.len() - pos {
        return Err(Error::codec("log", "side stream past the end of the chunk"));
    }
    let side = if side_len == 0 {
        Vec::new()
    } else {
        zstd_decompress(&rest[pos..pos + side_len], raw_len)?
    };
    pos += side_len;
    let mut side_pos = 0usize;
    let mut bc = ByteCoder::new(bits as u32, Coder::Dec(Decoder::new(&rest[pos..])));
    let mut st = State::new();
    let mut templates: Vec<Template> = Vec::new();
    let mut out: Vec<u8> = Vec::new();
    out.try_reserve_exact(raw_len)
        .map_err(|_| Error::Limit(format!("log: cannot allocate {raw_len} bytes")))?;
    for li in 0..n_lines {
        let budget = raw_len.saturating_sub(out.len());
        let sym = code_meta(&mut bc, &mut st, 0, 2, 0);
        match sym {
            SYM_RAW => {
                let cr = code_cr(&mut bc, &mut st, false, SYM_RAW);
                let raw_last = std::mem::take(&mut st.raw_last);
                let prev = std::mem::take(&mut st.prev_line);
                let vc = ValueCtx {
                    kind: K_RAW,
                    col: 0xAAAA,
                    gcol: 0xBBBB,
                    vt: &raw_last,
                    vg: &prev,
                    vl: None,
                };
                let l = code_value(&mut bc, &mut st, &[], &vc, budget)?;
                out.extend_from_slice(&l);
                if cr {
                    out.push(b'\r');
                }
                end_line(&mut st, SYM_RAW, &l, &[]);
                st.raw_last = l;
            }
            SYM_LONG => {
                let cr = code_cr(&mut bc, &mut st, false, SYM_LONG);
                let len = code_meta(&mut bc, &mut st, 0, 4, 1) as usize;
                let piece = side
                    .get(side_pos..side_pos.saturating_add(len))
                    .ok_or_else(|| {
                        Error::codec("log", "long line past the end of the side stream")
                    })?;
                side_pos += len;
                out.extend_from_slice(piece);
                if cr {
                    out.push(b'\r');
                }
                end_line(&mut st, SYM_LONG, &[], &[]);
            }
            s => {
                let c = s - SYM_BASE;
                if c as usize > templates.len() {
                    return Err(Error::codec(
                        "log",
                        format!("template {c} used before it is defined"),
                    ));
                }
                if c as usize == templates.len() {
                    let tm = code_template(&mut bc, &mut st, None, budget)?;
                    st.tlast.push(vec![Vec::new(); tm.len()]);
                    st.tlink.push(vec![u16::MAX; tm.len()]);
                    templates.push(tm);
                }
                let cr = code_cr(&mut bc, &mut st, false, s);
                let tm = &templates[c as usize];
                let toks = code_vars(&mut bc, &mut st, c, tm, None, budget)?;
                let start = out.len();
                for (p, t) in toks.iter().enumerate() {
                    if p > 0 {
                        out.push(b' ');
                    }
                    out.extend_from_slice(t);
                }
                let tk: Vec<&[u8]> = toks.iter().map(Vec::as_slice).collect();
                let line = out[start..].to_vec();
                if cr {
                    out.push(b'\r');
                }
                end_line(&mut st, s, &line, &tk);
            }
        }
        if li + 1 < n_lines || flags & 1 != 0 {
            out.push(b'\n');
        }
        if out.len() > raw_len {
            return Err(Error::codec(
                "log",
                format!("chunk decodes past its {raw_len} bytes"),
            ));
        }
        if let Coder::Dec(d) = &bc.coder {
            d.check()?;
        }
    }
    Ok(out)
}

/// Fast mode: the same line structure, but values are grouped by column and compressed
/// with zstd instead of the context-mixing coder.
///
/// Payload after the mode byte: n_lines, flags u8, meta_len, meta (zstd: per line the
/// varint `symbol * 2 + cr`, and a long line's length), body (zstd: template definitions,
/// then per template in order each variable column's values, then raw lines; every
/// value ends with '\n'), side (zstd of long lines, may be empty).
#[allow(clippy::too_many_arguments)]
fn encode_fast(
    data: &[u8],
    level: i32,
    lines: &[&[u8]],
    crs: &[bool],
    kinds: &[LineKind],
    toks: &[Vec<(u32, u32)>],
    templates: &[Template],
    final_nl: bool,
) -> Result<Vec<u8>> {
    let mut meta = Vec::new();
    let mut defs = Vec::new();
    let mut raw = Vec::new();
    let mut side = Vec::new();
    let mut cols: Vec<Vec<Vec<u8>>> = templates
        .iter()
        .map(|t| vec![Vec::new(); t.len()])
        .collect();
    let mut n_defined = 0u32;
    for (li, l) in lines.iter().enumerate() {
        let sym = match kinds[li] {
            LineKind::Raw => {
                raw.extend_from_slice(l);
                raw.push(b'\n');
                SYM_RAW
            }
            LineKind::Long => {
                side.extend_from_slice(l);
                SYM_LONG
            }
            LineKind::Tmpl(c) => {
                let tm = &templates[c as usize];
                if c == n_defined {
                    n_defined += 1;
                    defs.push(tm.len() as u8);
                    for slot in tm {
                        match slot {
                            Some(v) => {
                                defs.push(1);
                                defs.extend_from_slice(v);
                                defs.push(b'\n');
                            }
                            None => defs.push(0),
                        }
                    }
                }
                for (p, slot) in tm.iter().enumerate() {
                    if slot.is_none() {
                        let (a, b) = toks[li][p];
                        let col = &mut cols[c as usize][p];
                        col.extend_from_slice(&l[a as usize..b as usize]);
                        col.push(b'\n');
                    }
                }
                SYM_BASE + c
            }
        };
        put_varint(&mut meta, sym as u64 * 2 + crs[li] as u64);
        if sym == SYM_LONG {
            put_varint(&mut meta, l.len() as u64);
        }
    }
    let mut body = defs;
    for t in &cols {
        for c in t {
            body.extend_from_slice(c);
        }
    }
    body.extend_from_slice(&raw);
    let mut out = vec![MODE_FAST];
    put_varint(&mut out, lines.len() as u64);
    out.push(final_nl as u8);
    let z = |d: &[u8]| -> Result<Vec<u8>> {
        if d.is_empty() {
            Ok(Vec::new())
        } else {
            Ok(zstd::bulk::compress(d, level)?)
        }
    };
    for part in [z(&meta)?, z(&body)?, z(&side)?] {
        put_varint(&mut out, part.len() as u64);
        out.extend_from_slice(&part);
    }
    if out.len() > data.len() + 1 {
        out.clear();
        out.push(MODE_STORED);
        out.extend_from_slice(data);
    }
    Ok(out)
}

fn decode_fast(rest: &[u8], raw_len: usize) -> Result<Vec<u8>> {
    let bad = |w: &str| Error::codec("log", format!("fast chunk: {w}"));
    let mut pos = 0usize;
    let n_lines = get_varint(rest, &mut pos)?;
    if n_lines > raw_len as u64 + 1 {
        return Err(bad("too many lines"));
    }
    let final_nl = *rest.get(pos).ok_or_else(|| bad("truncated"))? & 1 != 0;
    pos += 1;
    let mut parts = Vec::new();
    for _ in 0..3 {
        let len = get_varint(rest, &mut pos)? as usize;
        if len > rest.len() - pos {
            return Err(bad("stream past the end"));
        }
        let p = &rest[pos..pos + len];
        pos += len;
        // Metadata is at most ~12 bytes per line; body and side at most the chunk.
        parts.push(if p.is_empty() {
            Vec::new()
        } else {
            zstd_decompress(p, raw_len.saturating_mul(2).saturating_add(64))?
        });
    }
    let (meta, body, side) = (&parts[0], &parts[1], &parts[2]);
    // Pass 1: symbols, counts per template.
    let mut mp = 0usize;
    let mut syms = Vec::new();
    let mut long_lens = Vec::new();
    let mut counts: Vec<usize> = Vec::new();
    for _ in 0..n_lines {
        let v = get_varint(meta, &mut mp)?;
        let sym = u32::try_from(v >> 1).map_err(|_| bad("symbol"))?;
        if sym == SYM_LONG {
            long_lens.push(get_varint(meta, &mut mp)? as usize);
        }
        if sym >= SYM_BASE {
            let c = (sym - SYM_BASE) as usize;
            if c > counts.len() {
                return Err(bad("template used before it is defined"));
            }
            if c == counts.len() {
                counts.push(0);
            }
            counts[c] += 1;
        }
        syms.push((sym, v & 1 != 0));
    }
    // Template definitions.
    let mut bp = 0usize;
    let take_value = |bp: &mut usize| -> Result<&[u8]> {
        let rest = body.get(*bp..).ok_or_else(|| bad("body truncated"))?;
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| bad("value without end"))?;
        *bp += n + 1;
        Ok(&rest[..n])
    };
    let mut templates: Vec<Template> = Vec::with_capacity(counts.len());
    for _ in 0..counts.len() {
        let n = *body.get(bp).ok_or_else(|| bad("body truncated"))? as usize;
        bp += 1;
        let mut t = Vec::with_capacity(n);
        for _ in 0..n {
            let m = *body.get(bp).ok_or_else(|| bad("body truncated"))?;
            bp += 1;
            t.push(if m != 0 {
                Some(take_value(&mut bp)?.to_vec())
            } else {
                None
            });
        }
        templates.push(t);
    }
    // Column cursors: values of each variable column are contiguous.
    let mut cursors: Vec<Vec<usize>> = Vec::with_capacity(templates.len());
    for (t, &cnt) in templates.iter().zip(&counts) {
        let mut cs = vec![0usize; t.len()];
        for (p, slot) in t.iter().enumerate() {
            if slot.is_none() {
                cs[p] = bp;
                for _ in 0..cnt {
                    take_value(&mut bp)?;
                }
            }
        }
        cursors.push(cs);
    }
    let mut out = Vec::new();
    out.try_reserve_exact(raw_len)
        .map_err(|_| Error::Limit(format!("log: cannot allocate {raw_len} bytes")))?;
    let (mut side_pos, mut long_i) = (0usize, 0usize);
    for (li, &(sym, cr)) in syms.iter().enumerate() {
        match sym {
            SYM_RAW => out.extend_from_slice(take_value(&mut bp)?),
            SYM_LONG => {
                let len = long_lens[long_i];
                long_i += 1;
                let piece = side
                    .get(side_pos..side_pos.saturating_add(len))
                    .ok_or_else(|| bad("side stream short"))?;
                side_pos += len;
                out.extend_from_slice(piece);
            }
            s => {
                let c = (s - SYM_BASE) as usize;
                for (p, slot) in templates[c].iter().enumerate() {
                    if p > 0 {
                        out.push(b' ');
                    }
                    match slot {
                        Some(v) => out.extend_from_slice(v),
                        None => {
                            let v = take_value(&mut cursors[c][p])?;
                            out.extend_from_slice(v);
                        }
                    }
                }
            }
        }
        if cr {
            out.push(b'\r');
        }
        if li + 1 < syms.len() || final_nl {
            out.push(b'\n');
        }
        if out.len() > raw_len {
            return Err(bad("decodes past the chunk"));
        }
    }
    Ok(out)
}
