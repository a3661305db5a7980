;; Linked-list stress: a long list that lives throughout (a deep chain for the marker, the
;; pattern Green Tea marks worst), and rounds of short-lived lists built, mapped, filtered,
;; reversed and appended, a few of which survive a few rounds in a ring.
;;
;; usage: lisp-example list-stress.scm [ROUNDS]   (default 200)

(define rounds (arg-or 0 200))
(define long-length 200000)
(define m 5000)
(define ring-size 4)

(define long-list (iota long-length))
(define ring (make-vector ring-size '()))

(define (sum l) (fold-left + 0 l))

(define (round! r)
  ;; (iota m) is 0 .. m-1; plus one is 1 .. m; its even elements are 2, 4, .., 2k.
  (let* ((xs (map (lambda (x) (+ x 1)) (iota m)))
         (evens (filter even? xs))
         (k (quotient m 2)))
    (assert (= (sum xs) (quotient (* m (+ m 1)) 2)))
    (assert (= (sum evens) (* k (+ k 1))))
    (assert (= (car (reverse evens)) (* 2 k)))
    (assert (= (length (append evens xs)) (+ k m)))
    (vector-set! ring (modulo r ring-size) (reverse evens))))

(do ((r 0 (+ r 1))) ((= r rounds))
  (round! r))

(assert (= (sum long-list) (quotient (* long-length (- long-length 1)) 2)))
(assert (= (length long-list) long-length))
(vector-for-each (lambda (l) (assert (= (length l) (quotient m 2)))) ring)
(display "rounds: ") (display rounds)
(display ", long list sum: ") (display (sum long-list))
(display ", ring lists: ") (display (map length (vector->list ring)))
(newline)

;; Bounded heap: the long list, the ring, and one round's lists (iota, the mapped list, the
;; filtered list, its reverse and the appended copy: 4.5 m pairs at most at once), plus the
;; fold's boxed sums and closures, which are tiny.
(define pair-bytes (object-bytes (cons 1 2)))
(define max-live (* pair-bytes (+ long-length (* ring-size (quotient m 2)) (* 5 m))))
(assert (<= (peak-heap-bytes) (heap-bound max-live)))
