//! Pipeline gates: `--max-ms` (the median execution time of each statement)
//! and `--fail-on` (a finding at or above a severity). A failed gate is
//! exit code 1, with the reasons on stderr; the report is printed anyway.

use super::findings::{Finding, Severity};
use crate::finding::at_or_above;

/// The gates asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Gates {
    /// `--max-ms`: the budget for each statement's median execution time.
    pub max_ms: Option<f64>,
    /// `--fail-on`: the lowest severity that fails.
    pub fail_on: Option<Severity>,
}

/// What a gate looks at for one statement.
#[derive(Debug, Clone, Copy)]
pub struct Measured<'a> {
    /// `statement 1 (line 1, column 1)`.
    pub label: &'a str,
    /// The median execution time; `None` when it was not executed.
    pub median_ms: Option<f64>,
    /// Its findings.
    pub findings: &'a [Finding],
}

impl Gates {
    /// Why the gates fail, one reason per statement and gate; empty when
    /// they pass.
    pub fn failures<'a>(&self, statements: impl IntoIterator<Item = Measured<'a>>) -> Vec<String> {
        let mut failures = Vec::new();
        for statement in statements {
            if let (Some(budget), Some(median)) = (self.max_ms, statement.median_ms)
                && median > budget
            {
                failures.push(format!(
                    "{}: the median execution time {median:.3} ms is over --max-ms {budget}",
                    statement.label
                ));
            }
            if let Some(level) = self.fail_on {
                let codes = at_or_above(statement.findings, level);
                if !codes.is_empty() {
                    failures.push(format!(
                        "{}: {} at or above --fail-on {level}",
                        statement.label,
                        codes.join(", ")
                    ));
                }
            }
        }
        failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::Subject;

    fn finding(code: &'static str, severity: Severity) -> Finding {
        Finding {
            code,
            severity,
            subject: Subject::Statement,
            message: String::new(),
            suggestion: String::new(),
            ddl: None,
            saving: None,
        }
    }

    #[test]
    fn budgets_compare_the_median() {
        let gates = Gates {
            max_ms: Some(5.0),
            fail_on: None,
        };
        let measured = |median| Measured {
            label: "statement 1 (line 1, column 1)",
            median_ms: median,
            findings: &[],
        };
        assert_eq!(
            gates.failures([measured(Some(7.25))]),
            [
                "statement 1 (line 1, column 1): the median execution time 7.250 ms is over --max-ms 5"
            ]
        );
        assert!(
            gates
                .failures([measured(Some(5.0)), measured(None)])
                .is_empty()
        );
    }

    #[test]
    fn fail_on_counts_findings_at_or_above_the_level() {
        let findings = [
            finding("disk-reads-dominate", Severity::Info),
            finding("selective-seq-scan", Severity::Warning),
        ];
        let measured = Measured {
            label: "statement 1 (line 1, column 1)",
            median_ms: Some(1.0),
            findings: &findings,
        };
        let at = |level| {
            Gates {
                max_ms: None,
                fail_on: Some(level),
            }
            .failures([measured])
        };
        assert_eq!(
            at(Severity::Warning),
            [
                "statement 1 (line 1, column 1): selective-seq-scan (warning) at or above --fail-on warning"
            ]
        );
        assert!(at(Severity::Critical).is_empty());
        assert_eq!(at(Severity::Info).len(), 1);
        assert!(Gates::default().failures([measured]).is_empty());
    }
}
