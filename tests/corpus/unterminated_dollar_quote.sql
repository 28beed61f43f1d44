-- expect: Unterminated dollar-quoted
SELECT 1; SELECT $x$ ; never closed
