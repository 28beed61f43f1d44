//! Words and numbers for people, shared by engines (their messages and
//! findings) and reports.

use std::time::Duration;

/// `one` or `many`, as `count` asks: "1 index", "2 indexes".
pub fn plural<'a>(count: usize, one: &'a str, many: &'a str) -> &'a str {
    if count == 1 { one } else { many }
}

/// A size in bytes for people, e.g. `768.00 KiB` (a negative or unknown
/// size, which the catalog never reports for a real relation, reads as 0).
pub fn bytes(size: i64) -> String {
    indicatif::HumanBytes(size.max(0) as u64).to_string()
}

/// `100,000`; fractions (averages per loop) keep one decimal.
pub fn count(n: f64) -> String {
    if n.fract() != 0.0 && n.abs() < 1e15 {
        return format!("{n:.1}");
    }
    let digits = format!("{:.0}", n.abs());
    let mut grouped = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    if n < 0.0 {
        grouped.insert(0, '-');
    }
    grouped
}

/// A wait or an age to the second, e.g. `1m 12s`: finer would be noise.
pub fn whole_seconds(duration: Duration) -> String {
    humantime::format_duration(Duration::from_secs(duration.as_secs())).to_string()
}

/// The runs of letters, digits and underscores in `text`, lower-cased: the
/// identifiers and literals of an expression (`lower(email)`: `lower`,
/// `email`).
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
}

/// A time in milliseconds for people, in the unit that reads best:
/// `850 ms`, `12.4 s`, `3.5 min`, `2.1 h`.
pub fn duration_ms(ms: f64) -> String {
    match ms {
        ms if ms < 1_000.0 => format!("{ms:.0} ms"),
        ms if ms < 60_000.0 => format!("{:.1} s", ms / 1_000.0),
        ms if ms < 3_600_000.0 => format!("{:.1} min", ms / 60_000.0),
        ms => format!("{:.1} h", ms / 3_600_000.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_numbers() {
        assert_eq!(plural(1, "index", "indexes"), "index");
        assert_eq!(plural(0, "index", "indexes"), "indexes");
        assert_eq!(bytes(-1), "0 B");
        assert_eq!(bytes(786_432), "768.00 KiB");
        assert_eq!(count(100000.0), "100,000");
        assert_eq!(count(999.0), "999");
        assert_eq!(count(1234567.0), "1,234,567");
        assert_eq!(count(10.5), "10.5");
        assert_eq!(count(0.0), "0");
        assert_eq!(whole_seconds(Duration::from_millis(72_900)), "1m 12s");
        assert_eq!(duration_ms(850.2), "850 ms");
        assert_eq!(duration_ms(12_400.0), "12.4 s");
        assert_eq!(duration_ms(210_000.0), "3.5 min");
        assert_eq!(duration_ms(7_560_000.0), "2.1 h");
    }
}
