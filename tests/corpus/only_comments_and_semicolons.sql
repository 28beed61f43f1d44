-- expect: no SQL statement
/* a /* nested */ comment */ ;; -- and ; more
;
