-- expect: ok
COPY t FROM STDIN;
1;
2
\.
SELECT 1
