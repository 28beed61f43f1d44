-- expect: ok
SELECT ';' AS a, $$;$$ AS b, $t$ ;$$; $t$ AS c, E'\';' AS d, "x;y" /* ; /* ; */ */ -- ;
FROM payments;
SELECT 2
