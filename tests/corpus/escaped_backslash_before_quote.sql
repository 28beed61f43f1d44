-- expect: ok
SELECT E'\\'; SELECT 'a\'; SELECT 3
