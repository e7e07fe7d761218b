//! Human-readable numbers for tables (JSON always carries exact integers).

/// `0 B`, `512 B`, `1.50 KiB`, `4.00 MiB`, `1.25 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.2} {}", UNITS[u])
}

/// Signed byte delta: `+1.00 MiB`, `-512 B`, `0 B`.
pub fn delta(d: i128) -> String {
    match d {
        0 => "0 B".to_string(),
        d if d > 0 => format!("+{}", bytes(d.min(u64::MAX as i128) as u64)),
        d => format!("-{}", bytes((-d).min(u64::MAX as i128) as u64)),
    }
}

/// Nanoseconds as seconds: `0.000s`, `2.500s`, `73.125s`.
pub fn secs(ns: u64) -> String {
    format!("{}.{:03}s", ns / 1_000_000_000, (ns / 1_000_000) % 1000)
}

/// Nanoseconds with a unit that fits: `750ns`, `412µs`, `3.25ms`, `1.234s`.
pub fn dur(ns: u64) -> String {
    match ns {
        0..=999 => format!("{ns}ns"),
        1_000..=999_999 => format!("{}µs", ns / 1_000),
        1_000_000..=999_999_999 => format!("{:.2}ms", ns as f64 / 1e6),
        _ => format!("{:.3}s", ns as f64 / 1e9),
    }
}

/// Thousands separators: `1,234,567`.
pub fn count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Parses a moment given on the command line: a plain integer is a sequence
/// number; `2.5s`, `2500ms`, `10us`, `7ns` are times (returned in ns).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Moment {
    Seq(u64),
    Time(u64),
}

pub fn parse_moment(s: &str) -> Result<Moment, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<u64>() {
        return Ok(Moment::Seq(n));
    }
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1_000_000u64)
    } else if let Some(n) = s.strip_suffix("us") {
        (n, 1_000)
    } else if let Some(n) = s.strip_suffix("ns") {
        (n, 1)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1_000_000_000)
    } else {
        return Err(format!("`{s}` is neither a sequence number nor a time like 2.5s / 2500ms"));
    };
    decimal_scaled(num.trim(), scale).map(Moment::Time).ok_or_else(|| format!("`{s}`: bad number"))
}

/// Parses a byte count: `1499136`, `1464KiB`, `1.5MiB`, `0x16e000`.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        return u64::from_str_radix(h, 16).map_err(|e| format!("`{s}`: {e}"));
    }
    for (suf, scale) in [("KiB", 1u64 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30), ("B", 1)] {
        if let Some(n) = t.strip_suffix(suf) {
            return decimal_scaled(n.trim(), scale).ok_or_else(|| format!("`{s}`: bad size"));
        }
    }
    t.parse::<u64>().map_err(|e| format!("`{s}`: {e}"))
}

/// `"2.5"` × 1e9 exactly, without going through floating point.
fn decimal_scaled(num: &str, scale: u64) -> Option<u64> {
    let (int, frac) = match num.split_once('.') {
        Some((i, f)) => (i, f),
        None => (num, ""),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.chars().all(|c| c.is_ascii_digit()) || !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let i: u64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let frac = &frac[..frac.len().min(18)];
    let f: u128 = if frac.is_empty() { 0 } else { frac.parse().ok()? };
    let part = f * scale as u128 / 10u128.pow(frac.len() as u32);
    i.checked_mul(scale)?.checked_add(u64::try_from(part).ok()?)
}


/// A plain text table: `right[i]` right-aligns column i. Columns are separated
/// by two spaces; trailing spaces are trimmed.
pub fn table(headers: &[&str], rows: &[Vec<String>], right: &[bool]) -> String {
    let n = headers.len();
    let mut w: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(n) {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: &mut dyn Iterator<Item = &str>, out: &mut String| {
        let mut s = String::new();
        for (i, c) in cells.enumerate().take(n) {
            if i > 0 {
                s.push_str("  ");
            }
            let pad = w[i].saturating_sub(c.chars().count());
            if right.get(i).copied().unwrap_or(false) {
                s.push_str(&" ".repeat(pad));
                s.push_str(c);
            } else {
                s.push_str(c);
                s.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(&mut headers.iter().copied(), &mut out);
    for r in rows {
        line(&mut r.iter().map(|s| s.as_str()), &mut out);
    }
    out
}

/// `0x1a2b`.
pub fn hex(v: u64) -> String {
    format!("{v:#x}")
}

/// A set of chip ids as ranges: `0-7`, `0,2,5-6`.
pub fn chip_set(chips: &[i32]) -> String {
    let mut v = chips.to_vec();
    v.sort_unstable();
    v.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        parts.push(if j > i { format!("{}-{}", v[i], v[j]) } else { v[i].to_string() });
        i = j + 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.50 KiB");
        assert_eq!(bytes(4 << 20), "4.00 MiB");
        assert_eq!(delta(-(1 << 20)), "-1.00 MiB");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(count(123), "123");
        assert_eq!(secs(2_500_000_000), "2.500s");
    }

    #[test]
    fn moments() {
        assert_eq!(parse_moment("1234"), Ok(Moment::Seq(1234)));
        assert_eq!(parse_moment("2.5s"), Ok(Moment::Time(2_500_000_000)));
        assert_eq!(parse_moment("2500ms"), Ok(Moment::Time(2_500_000_000)));
        assert_eq!(parse_moment(".5ms"), Ok(Moment::Time(500_000)));
        assert_eq!(parse_moment("3us"), Ok(Moment::Time(3_000)));
        assert!(parse_moment("abc").is_err());
        assert!(parse_moment("1.2.3s").is_err());
        assert_eq!(parse_bytes("1464KiB"), Ok(1464 * 1024));
        assert_eq!(parse_bytes("0x100"), Ok(256));
        assert_eq!(parse_bytes("1.5MiB"), Ok(1572864));
    }
}
