;; GCBench (John Ellis and Pete Kovac, after Hans Boehm's version): binary trees built top
;; down and bottom up, with a long-lived tree and a large array of floats live throughout.
;;
;; usage: lisp-example gcbench.scm [MAX-DEPTH]   (default 16: trees of depth 4 .. 16, a
;;        stretch tree of depth 18, a long-lived tree of depth 16, an array of 500000 floats)
;;
;; A node is a vector #(left right i j). The array is an f64vector: one large object with no
;; pointer words (noscan). Every tree's node count is compared with 2^(d+1) - 1.

(define max-depth (arg-or 0 16))
(define min-depth 4)
(define long-lived-depth max-depth)
(define stretch-depth (+ max-depth 2))
(define array-size 500000)

(define (tree-size d) (- (expt 2 (+ d 1)) 1))
(define (num-iters d) (* 2 (quotient (tree-size stretch-depth) (tree-size d))))

(define (make-node left right) (vector left right 0 0))

;; Top down: fill in the children of an existing node.
(define (populate! depth node)
  (when (> depth 0)
    (let ((left (make-node #f #f))
          (right (make-node #f #f)))
      (vector-set! node 0 left)
      (vector-set! node 1 right)
      (populate! (- depth 1) left)
      (populate! (- depth 1) right))))

;; Bottom up: build the children first.
(define (make-tree depth)
  (if (<= depth 0)
      (make-node #f #f)
      (make-node (make-tree (- depth 1)) (make-tree (- depth 1)))))

(define (count node)
  (if node
      (+ 1 (count (vector-ref node 0)) (count (vector-ref node 1)))
      0))

(define (time-construction depth)
  (let ((iters (num-iters depth)))
    (display "Creating ") (display iters) (display " trees of depth ") (display depth)
    (newline)
    (let ((start (runtime-ms)) (last #f))
      (do ((i 0 (+ i 1))) ((= i iters))
        (set! last (make-node #f #f))
        (populate! depth last))
      (assert (= (count last) (tree-size depth)))
      (display "\tTop down construction took ") (display (- (runtime-ms) start))
      (display " msec") (newline))
    (let ((start (runtime-ms)) (last #f))
      (do ((i 0 (+ i 1))) ((= i iters))
        (set! last (make-tree depth)))
      (assert (= (count last) (tree-size depth)))
      (display "\tBottom up construction took ") (display (- (runtime-ms) start))
      (display " msec") (newline))))

(define start (runtime-ms))
(display "Garbage Collector Test") (newline)
(display " Stretching memory with a binary tree of depth ") (display stretch-depth) (newline)
(assert (= (count (make-tree stretch-depth)) (tree-size stretch-depth)))

(display " Creating a long-lived binary tree of depth ") (display long-lived-depth) (newline)
(define long-lived (make-node #f #f))
(populate! long-lived-depth long-lived)

(display " Creating a long-lived array of ") (display array-size) (display " doubles") (newline)
(define array (make-f64vector array-size 0.0))
(do ((i 0 (+ i 1))) ((= i (quotient array-size 2)))
  (f64vector-set! array i (/ 1.0 (+ i 1))))

(do ((d min-depth (+ d 2))) ((> d max-depth))
  (time-construction d))

;; The checks GCBench makes (the long-lived data survived every collection), and the answers.
(assert (= (count long-lived) (tree-size long-lived-depth)))
(assert (= (f64vector-ref array 999) (/ 1.0 1000)))
(assert (= (f64vector-ref array (- array-size 1)) 0.0))
(display "Completed in ") (display (- (runtime-ms) start)) (display " ms.") (newline)

;; Bounded heap: the most data ever live is the stretch tree, or the long-lived tree, one
;; short-lived tree of at most its depth and the array.
(define node-bytes (object-bytes (make-node #f #f)))
(define max-live (+ (* node-bytes (max (tree-size stretch-depth) (* 2 (tree-size long-lived-depth))))
                    (object-bytes array)))
(assert (<= (peak-heap-bytes) (heap-bound max-live)))
