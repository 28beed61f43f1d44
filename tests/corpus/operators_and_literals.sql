-- expect: ok
SELECT 1 <-> 2, a @> b, c ->> 'k', d #>> '{a}', e ~* 'x', |/ 4, @ -1, B'1010', X'FF', 1e308, .5, 0x1F, interval '1 day', '1'::jsonb -> 'a', a[1:2][3], (b).c FROM t
