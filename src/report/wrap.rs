//! Text fitted to a terminal's width, broken at spaces only: a number, a
//! name or a token of SQL is never split across lines (a terminal left to
//! wrap a long line itself would split it wherever the line ends).

use unicode_width::UnicodeWidthStr;

/// What separates the parts of a line that belong together, such as a
/// node detail's `quicksort  Memory: 25kB`, as PostgreSQL separates them.
const PARTS: &str = "  ";

/// The columns `text` takes on a terminal.
pub fn width(text: &str) -> usize {
    text.width()
}

/// `text` broken at spaces into lines of at most `columns`, the first line
/// starting with `first` and the others with `rest` (an indentation, or a
/// tree's arrow and the indentation under it). Parts separated by two
/// spaces are kept on one line when they fit one; a word wider than a line
/// stays whole, on a line of its own. `None` keeps the text on one line.
pub fn wrap(text: &str, columns: Option<usize>, first: &str, rest: &str) -> Vec<String> {
    let Some(columns) = columns else {
        return vec![format!("{first}{text}")];
    };
    let mut lines = Lines {
        done: Vec::new(),
        line: first.to_owned(),
        used: width(first),
        started: false,
        columns,
        rest,
    };
    for part in text.split(PARTS) {
        let fits_a_line = width(rest) + width(part) <= columns;
        if fits_a_line && !lines.fits(PARTS, part) {
            lines.next();
        }
        for (index, word) in part.split(' ').enumerate() {
            lines.push(if index == 0 { PARTS } else { " " }, word);
        }
    }
    lines.next();
    lines.done
}

/// The narrowest width [`wrap`] keeps every word of `text` whole in, with
/// lines starting with `first` and `rest`.
pub fn narrowest(text: &str, first: &str, rest: &str) -> usize {
    let longest = text.split(' ').map(width).max().unwrap_or(0);
    width(first).max(width(rest)) + longest
}

/// Lines being filled, word by word.
struct Lines<'a> {
    done: Vec<String>,
    line: String,
    used: usize,
    /// Whether `line` holds a word yet: a line is never broken before its
    /// first word, however wide.
    started: bool,
    columns: usize,
    rest: &'a str,
}

impl Lines<'_> {
    /// Whether `text` after `separator` fits on the line.
    fn fits(&self, separator: &str, text: &str) -> bool {
        !self.started || self.used + width(separator) + width(text) <= self.columns
    }

    /// Adds `word` after `separator`, on the next line when it does not fit.
    fn push(&mut self, separator: &str, word: &str) {
        if !self.fits(separator, word) {
            self.next();
        }
        if self.started {
            self.line.push_str(separator);
            self.used += width(separator);
        } else if word.is_empty() {
            return;
        }
        self.line.push_str(word);
        self.used += width(word);
        self.started = true;
    }

    /// Ends the line; the next starts with `rest`.
    fn next(&mut self) {
        let line = std::mem::replace(&mut self.line, self.rest.to_owned());
        self.done.push(line.trim_end().to_owned());
        self.used = width(self.rest);
        self.started = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaks_at_spaces_only_and_indents_what_follows() {
        let text = "Filter: (amount > 1,234.50) AND (status = 'open'::text)";
        let lines = wrap(text, Some(24), "  ", "    ");
        assert_eq!(
            lines,
            [
                "  Filter: (amount >",
                "    1,234.50) AND",
                "    (status =",
                "    'open'::text)"
            ]
        );
        assert!(lines.iter().all(|line| width(line) <= 24));
        assert_eq!(narrowest(text, "  ", "    "), 4 + "'open'::text)".len());
    }

    #[test]
    fn a_word_wider_than_the_line_stays_whole() {
        let name = "rental_payment_2024_01_customer_id_paid_at_idx";
        assert_eq!(
            wrap(
                &format!("Index Scan using {name} on p"),
                Some(20),
                "→ ",
                "  "
            ),
            ["→ Index Scan using", &format!("  {name}"), "  on p"]
        );
    }

    #[test]
    fn parts_stay_together_when_they_fit_a_line() {
        let text = "Sort Method: external merge  Disk: 7,144kB";
        assert_eq!(wrap(text, Some(80), "", ""), [text]);
        assert_eq!(
            wrap(text, Some(36), "", "  "),
            ["Sort Method: external merge", "  Disk: 7,144kB"]
        );
        let filter = "Filter: (a > 1)  (removed 219,351 rows per loop)";
        assert_eq!(
            wrap(filter, Some(20), "", "  "),
            ["Filter: (a > 1)", "  (removed 219,351", "  rows per loop)"]
        );
        assert_eq!(wrap(text, None, "> ", ""), [format!("> {text}")]);
    }
}
