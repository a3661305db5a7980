;; Finalizers: (on-collect obj proc) calls (proc obj) once, after the first collection that
;; finds obj unreachable; obj and what it reaches are kept for that call, and weak references
;; to it are cleared before it. Counts every call and checks each against what was made.
;;
;; usage: lisp-example finalizers.scm [ROUNDS]   (default 50)

(define rounds (arg-or 0 50))
(define per-round 1000)
(define keep-every 4)

(define finalized 0)
(define seen (make-vector (* rounds per-round) #f))

;; A tracked object: (tracked id payload), with a vector payload it reaches.
(define (make-tracked id weak)
  (let ((o (list 'tracked id (make-vector 3 id))))
    (on-collect o (lambda (x)
                    ;; The object and what it reaches are intact; weak references to it are
                    ;; already cleared; and this is the only call for it.
                    (assert (eq? (car x) 'tracked))
                    (assert (= (vector-ref (caddr x) 2) (cadr x)))
                    (assert (not (weak-box-ref (vector-ref weak (cadr x)))))
                    (assert (not (vector-ref seen (cadr x))))
                    (vector-set! seen (cadr x) #t)
                    (set! finalized (+ finalized 1))))
    (vector-set! weak id (make-weak-box o))
    o))

(define weak (make-vector (* rounds per-round) #f))

;; Makes a round's objects; returns the kept ones (the others are garbage on return).
(define (round! r)
  (let loop ((i 0) (kept '()))
    (if (= i per-round)
        kept
        (let ((o (make-tracked (+ (* r per-round) i) weak)))
          (loop (+ i 1) (if (= 0 (modulo i keep-every)) (cons o kept) kept))))))

(define kept '())
(do ((r 0 (+ r 1))) ((= r rounds))
  (let ((before finalized))
    (set! kept (append (round! r) kept))
    (collect)
    ;; Every object this round dropped has been finalized by now (some by collections the
    ;; round's own allocation started; the rest right after this one), and no kept one.
    (assert (= (- finalized before) (- per-round (quotient per-round keep-every))))))

;; Reported once: another collection runs no finalizer again.
(define total finalized)
(collect)
(assert (= finalized total))

;; Dropping the kept objects finalizes them too.
(set! kept '())
(collect)
(assert (= finalized (* rounds per-round)))

;; Resurrection: a finalizer may store its object; the object stays usable, and is never
;; reported again.
(define resurrected '())
(define (make-phoenix)
  (on-collect (list 'phoenix 42) (lambda (x) (set! resurrected x))))
(make-phoenix)
(collect)
(assert (equal? resurrected '(phoenix 42)))
(set! resurrected '())
(collect)
(collect)
(assert (null? resurrected))

(display "finalized: ") (display finalized)
(display ", finalizer calls: ") (display (finalizers-run))
(newline)
(assert (= (finalizers-run) (+ (* rounds per-round) 1)))

;; Bounded heap: the weak boxes and seen flags (rounds * per-round each), and one round's
;; objects with their closures and payloads (about 12 words each, kept for one cycle).
(define max-live (* 8 (+ (* 2 rounds per-round) (* 2 per-round 12) (* rounds per-round 12))))
(assert (<= (peak-heap-bytes) (heap-bound max-live)))
