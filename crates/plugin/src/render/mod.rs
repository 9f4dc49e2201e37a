//! What the plugin prints, rendered from watches without I/O: [`jobs`] (one watch's jobs),
//! [`list`] (a row per watch) and [`object`] (json and yaml).

pub mod jobs;
pub mod list;
pub mod object;

use jiff::Timestamp;

/// Columns are separated as kubectl separates them.
const GAP: &str = "   ";

/// How tables print: their width (the last column is cut to fit it) and whether with headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Table {
    pub width: Option<usize>,
    pub headers: bool,
}

impl Default for Table {
    fn default() -> Self {
        Self {
            width: None,
            headers: true,
        }
    }
}

impl Table {
    #[cfg(test)]
    pub fn fit(width: usize) -> Self {
        Self {
            width: Some(width),
            ..Self::default()
        }
    }

    /// Left-aligned columns; the last one is cut to fit the width.
    pub fn columns<S: AsRef<str>>(&self, header: &[S], rows: &[Vec<String>]) -> String {
        columns(header, rows, self.width, self.headers)
    }
}

fn columns<S: AsRef<str>>(
    header: &[S],
    rows: &[Vec<String>],
    width: Option<usize>,
    headers: bool,
) -> String {
    let n = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.as_ref().chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let lead: usize = widths[..n - 1].iter().map(|w| w + GAP.len()).sum();
    let room = width.map(|w| w.saturating_sub(lead).max(10));
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| h.as_ref().to_string()).collect();
    let header = headers.then_some(&header);
    for row in header.into_iter().chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 < n {
                line.push_str(&format!("{cell:<w$}{GAP}", w = widths[i]));
            } else {
                line.push_str(&cut(cell, room));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `text` cut to `room` characters, ending in "..." when cut.
fn cut(text: &str, room: Option<usize>) -> String {
    match room {
        Some(room) if text.chars().count() > room => {
            let kept: String = text.chars().take(room.saturating_sub(3)).collect();
            format!("{kept}...")
        }
        _ => text.to_string(),
    }
}

/// How long ago, as kubectl's AGE column says it: 45s, 12m, 5h3m, 3d.
pub fn age(now: Timestamp, then: Timestamp) -> String {
    let s = now.duration_since(then).as_secs().max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86_400);
    match s {
        0..120 => format!("{s}s"),
        120..600 => format!("{m}m{}s", s % 60),
        600..10_800 => format!("{m}m"),
        10_800..28_800 => format!("{h}h{}m", m % 60),
        28_800..172_800 => format!("{h}h"),
        172_800..691_200 => format!("{d}d{}h", h % 24),
        _ => format!("{d}d"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn ages_read_like_kubectl() {
        for (s, want) in [
            (5, "5s"),
            (130, "2m10s"),
            (3_000, "50m"),
            (18_000, "5h0m"),
            (90_000, "25h"),
            (200_000, "2d7h"),
            (900_000, "10d"),
        ] {
            assert_eq!(age(at(s), at(0)), want);
        }
    }
}
