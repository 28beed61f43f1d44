-- expect: ok
SELECT id FROM payments WHERE user_id = 1
