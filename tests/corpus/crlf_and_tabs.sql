-- expect: ok
SELECT id,
	created_at
FROM payments;
SELECT2
