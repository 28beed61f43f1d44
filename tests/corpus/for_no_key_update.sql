-- expect: Expected: one of UPDATE or SHARE, found: NO
SELECT * FROM t FOR NO KEY UPDATE
