-- expect: ok
SELECT '😀;' AS "😀", été FROM "Täble" WHERE x = U&'d\0061t\+000061'
