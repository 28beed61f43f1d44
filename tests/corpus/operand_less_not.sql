-- expect: NOT is a reserved word
SELECT NOT NOT NOT
