;; The prelude: library procedures written in the language itself (they call procedures, which
;; primitives cannot). Loaded by Interp::new before any program.

(define (map f l . ls)
  (if (null? ls)
      (let loop ((l l) (acc '()))
        (if (null? l) (reverse acc) (loop (cdr l) (cons (f (car l)) acc))))
      (let loop ((l l) (m (car ls)) (acc '()))
        (if (or (null? l) (null? m))
            (reverse acc)
            (loop (cdr l) (cdr m) (cons (f (car l) (car m)) acc))))))

(define (for-each f l . ls)
  (if (null? ls)
      (let loop ((l l))
        (if (pair? l) (begin (f (car l)) (loop (cdr l)))))
      (let loop ((l l) (m (car ls)))
        (if (and (pair? l) (pair? m)) (begin (f (car l) (car m)) (loop (cdr l) (cdr m)))))))

(define (filter keep? l)
  (let loop ((l l) (acc '()))
    (cond ((null? l) (reverse acc))
          ((keep? (car l)) (loop (cdr l) (cons (car l) acc)))
          (else (loop (cdr l) acc)))))

(define (fold-left f acc l)
  (if (null? l) acc (fold-left f (f acc (car l)) (cdr l))))

(define (fold-right f acc l)
  (let loop ((l (reverse l)) (acc acc))
    (if (null? l) acc (loop (cdr l) (f (car l) acc)))))

(define (iota n . start)
  (let ((s (if (null? start) 0 (car start))))
    (let loop ((i (- n 1)) (acc '()))
      (if (< i 0) acc (loop (- i 1) (cons (+ s i) acc))))))

(define (list-copy l) (map (lambda (x) x) l))

(define (vector-map f v)
  (let* ((n (vector-length v)) (out (make-vector n #f)))
    (do ((i 0 (+ i 1))) ((= i n) out)
      (vector-set! out i (f (vector-ref v i))))))

(define (vector-for-each f v)
  (do ((i 0 (+ i 1))) ((= i (vector-length v)))
    (f (vector-ref v i))))

(define (arg-or k default)
  ;; The k-th command-line argument as a number, or default.
  (let ((args (command-line-arguments)))
    (if (> (length args) k)
        (let ((n (string->number (list-ref args k))))
          (if n n (error "not a number:" (list-ref args k))))
        default)))
