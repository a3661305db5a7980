;; A memo cache in a weak-key table (ephemerons): an entry lives exactly as long as its key
;; is reachable from elsewhere, even when the cached value refers back to the key. After each
;; collection the cache must have shrunk to the keys the program still holds.
;;
;; usage: lisp-example weak-cache.scm [ROUNDS]   (default 50)

(define rounds (arg-or 0 50))
(define keys-per-round 2000)
(define keep-every 10)

(define cache (make-weak-table))
(define misses 0)

;; The "expensive" function; its value holds the key, so a strong table would never let go.
(define (compute key) (cons key (* (car key) (car key))))

(define (lookup key)
  (let ((hit (table-ref cache key #f)))
    (or hit
        (let ((v (compute key)))
          (set! misses (+ misses 1))
          (table-set! cache key v)
          v))))

;; One round: make fresh keys, look each up twice (a miss, then a hit), keep every tenth key
;; and a weak box to every key. Returns (kept . boxes); the other keys become garbage when
;; this procedure returns (its frame, the only other root, is gone).
(define (round! r)
  (let loop ((i 0) (kept '()) (boxes '()))
    (if (= i keys-per-round)
        (cons kept boxes)
        (let* ((key (list (+ (* r keys-per-round) i)))
               (v1 (lookup key))
               (v2 (lookup key)))
          (assert (eq? v1 v2))
          (assert (eq? (car v1) key))
          (loop (+ i 1)
                (if (= 0 (modulo i keep-every)) (cons key kept) kept)
                (cons (make-weak-box key) boxes))))))

(define kept '())
(define boxes '())
(define shrinks 0)

(do ((r 0 (+ r 1))) ((= r rounds))
  (let ((result (round! r)))
    (set! kept (car result))
    (set! boxes (cdr result)))
  (let ((before (table-count cache)))
    (collect)
    (let ((after (table-count cache)))
      ;; Only this round's kept keys survive: the previous round's were dropped by set!.
      (assert (= after (length kept)))
      (assert (< after before))
      (set! shrinks (+ shrinks 1))))
  ;; Kept keys still hit, with the right value; weak boxes of dropped keys are empty.
  (for-each (lambda (k) (assert (= (cdr (table-ref cache k #f)) (* (car k) (car k))))) kept)
  (assert (= (length (filter weak-box-live? boxes)) (length kept))))

;; An ephemeron chain: k1's value holds k2, k2's holds k3, ...: all live while k1 is held,
;; found by the mark's ephemeron fixpoint; all dead once k1 is dropped.
(define chain (make-weak-table))
(define (make-chain n)
  (let loop ((i 0) (first #f) (prev #f))
    (if (= i n)
        first
        (let ((k (list 'link i)))
          (if prev (table-set! chain prev k))
          (loop (+ i 1) (or first k) k)))))
(define head (make-chain 100))
(collect)
(assert (= (table-count chain) 99))
(set! head #f)
(collect)
(assert (= (table-count chain) 0))

(display "rounds: ") (display rounds)
(display ", misses: ") (display misses)
(display ", cache after the last collection: ") (display (table-count cache))
(display ", shrinks: ") (display shrinks)
(newline)
(assert (= misses (* rounds keys-per-round)))
(assert (= shrinks rounds))

;; Bounded heap: two rounds of keys, values, boxes and table cells at most.
(define max-live (* 2 keys-per-round 8 (object-bytes (cons 1 2))))
(assert (<= (peak-heap-bytes) (heap-bound max-live)))
