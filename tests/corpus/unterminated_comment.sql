-- expect: Unexpected EOF while in a multi-line comment
SELECT 1 /* never /* closed */
