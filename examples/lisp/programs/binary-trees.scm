;; binary-trees, the Computer Language Benchmarks Game's allocation pattern: a stretch tree, a
;; long-lived tree, and many short-lived trees of depths 4, 6, ... N.
;;
;; usage: lisp-example binary-trees.scm [N]      (default N = 10; the benchmark uses 21)
;;
;; A tree node is a pair (left . right); a leaf is (() . ()). The check of a tree is its node
;; count, 2^(d+1) - 1 for depth d, so every printed check is compared with that formula.

(define (make-tree d)
  (if (= d 0)
      (cons '() '())
      (cons (make-tree (- d 1)) (make-tree (- d 1)))))

(define (check tree)
  (if (null? (car tree))
      1
      (+ 1 (check (car tree)) (check (cdr tree)))))

(define (nodes d) (- (expt 2 (+ d 1)) 1))

(define (report label check expected)
  (assert (= check expected))
  (display label)
  (display "\t check: ")
  (display check)
  (newline))

(define n (arg-or 0 10))
(define min-depth 4)
(define max-depth (max (+ min-depth 2) n))
(define stretch-depth (+ max-depth 1))

(report (string-append "stretch tree of depth " (number->string stretch-depth))
        (check (make-tree stretch-depth))
        (nodes stretch-depth))

(define long-lived (make-tree max-depth))

(do ((d min-depth (+ d 2)))
    ((> d max-depth))
  (let ((iterations (expt 2 (+ (- max-depth d) min-depth))))
    (let loop ((i 0) (sum 0))
      (if (< i iterations)
          (loop (+ i 1) (+ sum (check (make-tree d))))
          (report (string-append (number->string iterations) "\t trees of depth "
                                 (number->string d))
                  sum
                  (* iterations (nodes d)))))))

(report (string-append "long lived tree of depth " (number->string max-depth))
        (check long-lived)
        (nodes max-depth))

;; Bounded heap: the most data ever live is the stretch tree, or the long-lived tree with one
;; short-lived tree of at most its depth: 2^(max-depth + 2) - 1 nodes at most.
(define max-live (* (- (expt 2 (+ max-depth 2)) 1) (object-bytes (cons '() '()))))
(assert (<= (peak-heap-bytes) (heap-bound max-live)))
