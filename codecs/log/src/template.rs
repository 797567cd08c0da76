//! Tokenising log lines and clustering them into templates (Drain-style online
//! clustering: He et al., "Drain: An Online Log Parsing Approach with Fixed Depth Tree",
//! ICWS 2017; Logzip's iterative clustering), with no per-system patterns.
//!
//! A line is split at single spaces; extra spaces of a run stay at the front of the next
//! token, so `"a  b"` is `["a", " b"]` and joining tokens with one space gives the line
//! back exactly. Tokens containing a digit are masked (treated as variables) while
//! clustering; the final template of a cluster keeps as constant every position where all
//! its lines agree byte for byte, whatever the token looks like.

use std::collections::HashMap;

/// Most tokens a templated line may have (longer lines are coded as raw text).
pub const MAX_TOKENS: usize = 255;
/// Most clusters compared against one new line shape.
const MAX_CANDIDATES: usize = 400;

/// Splits `line` into token ranges (see the module doc).
pub fn tokenize(line: &[u8], out: &mut Vec<(u32, u32)>) {
    out.clear();
    let n = line.len();
    let mut p = 0usize;
    loop {
        let start = p;
        while p < n && line[p] == b' ' {
            p += 1;
        }
        while p < n && line[p] != b' ' {
            p += 1;
        }
        out.push((start as u32, p as u32));
        if p >= n {
            return;
        }
        p += 1; // the separating space
    }
}

fn fnv(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &c in b {
        h = (h ^ c as u64).wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

/// A template position during clustering.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    Wild,
    Word(u64),
}

struct Cluster {
    slots: Vec<Slot>,
}

/// Online Drain-like clustering of token sequences.
pub struct Clusterer {
    clusters: Vec<Cluster>,
    by_len: HashMap<usize, Vec<u32>>,
    exact: HashMap<u64, u32>,
    max_clusters: usize,
    /// Similarity threshold in 1/256 units: the share of word positions (tokens without
    /// digits) a line must share with a cluster's template to join it; a word where the
    /// template already has a variable counts half (dpkg's package names: some have
    /// digits, some not).
    threshold: u32,
}

impl Clusterer {
    /// A clusterer that creates at most `max_clusters` clusters.
    pub fn new(max_clusters: usize) -> Self {
        // 0.7 measured best for both compression and grouping accuracy on Loghub (0.5 is Drain's).
        let mut threshold = 180;
        if cfg!(feature = "stats") {
            threshold = std::env::var("LOG_SIM")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(threshold);
        }
        Clusterer {
            clusters: Vec::new(),
            by_len: HashMap::new(),
            exact: HashMap::new(),
            max_clusters,
            threshold,
        }
    }

    /// Number of clusters so far.
    pub fn len(&self) -> usize {
        self.clusters.len()
    }

    /// Whether no cluster exists yet.
    pub fn is_empty(&self) -> bool {
        self.clusters.is_empty()
    }

    /// Assigns a line (given as tokens of `line`) to a cluster, creating one if needed.
    /// Returns `None` when a new cluster would exceed the limit.
    pub fn add(&mut self, line: &[u8], toks: &[(u32, u32)]) -> Option<u32> {
        let n = toks.len();
        let mut shape: Vec<Slot> = Vec::with_capacity(n);
        let mut key = 0x9E37_79B9_7F4A_7C15u64 ^ n as u64;
        for &(a, b) in toks {
            let t = &line[a as usize..b as usize];
            let s = if t.iter().any(u8::is_ascii_digit) {
                Slot::Wild
            } else {
                Slot::Word(fnv(t))
            };
            key = (key.rotate_left(7)
                ^ match s {
                    Slot::Wild => 0x5555,
                    Slot::Word(h) => h,
                })
            .wrapping_mul(0x100_0000_01B3);
            shape.push(s);
        }
        if let Some(&c) = self.exact.get(&key) {
            self.merge(c, &shape);
            return Some(c);
        }
        let mut best: Option<(u32, u32, usize)> = None; // (cluster, sim, wild count)
        if let Some(list) = self.by_len.get(&n) {
            for &ci in list.iter().rev().take(MAX_CANDIDATES) {
                let c = &self.clusters[ci as usize];
                let mut eq = 0u32; // in halves
                let mut denom = 0u32;
                let mut wild = 0usize;
                for (ts, ls) in c.slots.iter().zip(&shape) {
                    match (ts, ls) {
                        (Slot::Word(a), Slot::Word(b)) => {
                            denom += 1;
                            if a == b {
                                eq += 2;
                            }
                        }
                        (Slot::Word(_), Slot::Wild) => denom += 1,
                        (Slot::Wild, Slot::Word(_)) => {
                            denom += 1;
                            eq += 1;
                            wild += 1;
                        }
                        (Slot::Wild, Slot::Wild) => wild += 1,
                    }
                }
                let sim = (eq * 128).checked_div(denom).unwrap_or(256);
                let better = match best {
                    None => true,
                    Some((_, bs, bw)) => sim > bs || (sim == bs && wild > bw),
                };
                if better {
                    best = Some((ci, sim, wild));
                }
            }
        }
        let chosen = match best {
            Some((ci, sim, _)) if sim >= self.threshold => {
                self.merge(ci, &shape);
                ci
            }
            _ => {
                if self.clusters.len() >= self.max_clusters {
                    return None;
                }
                let ci = self.clusters.len() as u32;
                self.clusters.push(Cluster { slots: shape });
                self.by_len.entry(n).or_default().push(ci);
                ci
            }
        };
        self.exact.insert(key, chosen);
        Some(chosen)
    }

    fn merge(&mut self, ci: u32, shape: &[Slot]) {
        let c = &mut self.clusters[ci as usize];
        for (ts, ls) in c.slots.iter_mut().zip(shape) {
            if *ts != *ls {
                *ts = Slot::Wild;
            }
        }
    }
}

/// A final template: per position, a constant token or `None` for a variable.
pub type Template = Vec<Option<Vec<u8>>>;

/// Builds the final templates: a position is constant when every member line has the same
/// token there. `members` lists, per line, `Some(cluster)`; `tok_of(line, pos)` gives a
/// line's token.
pub fn finalize_templates<'a>(
    n_clusters: usize,
    assign: &[Option<u32>],
    tok_of: &dyn Fn(usize, usize) -> &'a [u8],
    n_tok: &dyn Fn(usize) -> usize,
) -> Vec<Template> {
    let mut out: Vec<Option<Template>> = vec![None; n_clusters];
    for (li, a) in assign.iter().enumerate() {
        let Some(c) = *a else { continue };
        let slot = &mut out[c as usize];
        match slot {
            None => {
                *slot = Some(
                    (0..n_tok(li))
                        .map(|p| Some(tok_of(li, p).to_vec()))
                        .collect(),
                );
            }
            Some(t) => {
                for (p, s) in t.iter_mut().enumerate() {
                    if let Some(v) = s {
                        if v.as_slice() != tok_of(li, p) {
                            *s = None;
                        }
                    }
                }
            }
        }
    }
    out.into_iter().map(Option::unwrap_or_default).collect()
}

/// Clusters the lines of `data` (split at '\n', a trailing '\r' ignored) the way the codec
/// does, returning each line's cluster, or `None` for lines coded as raw text.
pub fn cluster_lines(data: &[u8]) -> Vec<Option<u32>> {
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    let mut cl = Clusterer::new(usize::MAX);
    let mut t = Vec::new();
    body.split(|&b| b == b'\n')
        .map(|l| {
            let l = l.strip_suffix(b"\r").unwrap_or(l);
            tokenize(l, &mut t);
            if t.len() > MAX_TOKENS {
                None
            } else {
                cl.add(l, &t)
            }
        })
        .collect()
}

/// Grouping accuracy (Zhu et al., "Tools and Benchmarks for Automated Log Parsing", 2019):
/// the fraction of lines whose predicted group holds exactly the lines of their true group.
pub fn grouping_accuracy(predicted: &[Option<u32>], truth: &[String]) -> f64 {
    let n = predicted.len().min(truth.len());
    if n == 0 {
        return 0.0;
    }
    let mut by_truth: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut by_pred: HashMap<Option<u32>, usize> = HashMap::new();
    for i in 0..n {
        by_truth.entry(truth[i].as_str()).or_default().push(i);
        *by_pred.entry(predicted[i]).or_default() += 1;
    }
    let mut correct = 0usize;
    for lines in by_truth.values() {
        let p = predicted[lines[0]];
        if p.is_some() && lines.iter().all(|&i| predicted[i] == p) && by_pred[&p] == lines.len() {
            correct += lines.len();
        }
    }
    correct as f64 / n as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<String> {
        let mut v = Vec::new();
        tokenize(s.as_bytes(), &mut v);
        v.iter()
            .map(|&(a, b)| s[a as usize..b as usize].to_string())
            .collect()
    }

    #[test]
    fn tokens_join_back_exactly() {
        for s in [
            "",
            " ",
            "a",
            "a b",
            "a  b",
            "  a",
            "a ",
            "a  ",
            "03-17 16:13:38.811  1702  2395 D x",
            "\t x  ",
        ] {
            let t = toks(s);
            assert_eq!(t.join(" "), s, "{t:?}");
        }
        assert_eq!(toks("a  b"), ["a", " b"]);
        assert_eq!(toks("x  702"), ["x", " 702"]);
    }

    #[test]
    fn similar_lines_share_a_cluster() {
        let mut c = Clusterer::new(100);
        let mut t = Vec::new();
        let lines = [
            "[10.30 16:49:06] chrome.exe - proxy.cse.cuhk.edu.hk:5070 open through proxy x:5070 HTTPS",
            "[10.30 16:49:07] firefox.exe - proxy.cse.cuhk.edu.hk:5070 open through proxy x:5070 HTTPS",
            "[10.30 16:49:07] chrome.exe - proxy.cse.cuhk.edu.hk:5070 close, 0 bytes sent, 0 bytes received, lifetime <1 sec",
        ];
        let mut ids = Vec::new();
        for l in lines {
            tokenize(l.as_bytes(), &mut t);
            ids.push(c.add(l.as_bytes(), &t));
        }
        assert_eq!(ids[0], ids[1]);
        assert_ne!(ids[0], ids[2]);
    }
}
