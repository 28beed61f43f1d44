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
    }
}
