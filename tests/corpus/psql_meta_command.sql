-- expect: Expected: an SQL statement
\d payments
