-- expect: ok
SELECT $a$ $ab$ ; $a$, $1, a$b$c FROM t WHERE x = $2; SELECT 2
