-- expect: is not valid UTF-8 (line 3, column 9)
SELECT 1;
SELECT 'ÿ';
