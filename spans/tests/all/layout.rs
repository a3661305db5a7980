//! Every `Layout` constructor returns a layout or a typed error, for any arguments and any
//! nesting (issue 8, finding 5: an array of an array reached `unreachable!`).

use proptest::prelude::*;
use sencha_spans::{Error, Layout};

/// The regression of finding 5, with the pointer words it must have.
#[test]
fn layout_array_of_array_repeats_the_inner_pattern() {
    let inner = Layout::array(Layout::with_pointers(16, 0b10).unwrap(), 1).unwrap();
    let outer = Layout::array(inner, 3).unwrap();
    assert_eq!(outer.bytes(), 48);
    let words: Vec<usize> = (0..6).filter(|&w| outer.is_pointer_word(w)).collect();
    assert_eq!(words, [1, 3, 5]);
    // Deeper: (2 x (2 x {ptr, int})) x 5 = 20 elements of {ptr, int}.
    let e = Layout::with_pointers(16, 0b01).unwrap();
    let deep = Layout::array(Layout::array(Layout::array(e, 2).unwrap(), 2).unwrap(), 5).unwrap();
    let flat = Layout::array(e, 20).unwrap();
    assert_eq!(deep.bytes(), flat.bytes());
    for w in 0..deep.words() + 2 {
        assert_eq!(deep.is_pointer_word(w), flat.is_pointer_word(w), "word {w}");
    }
}

/// A constructor call, possibly nesting others.
#[derive(Clone, Debug)]
enum Ctor {
    None(usize),
    All(usize),
    With(usize, u64),
    Array(Box<Ctor>, usize),
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        0usize..600,
        Just(usize::MAX),
        Just(1 << 40),
        Just((1 << 40) + 1),
        any::<usize>()
    ]
}

fn ctor() -> impl Strategy<Value = Ctor> {
    let leaf = prop_oneof![
        size().prop_map(Ctor::None),
        size().prop_map(Ctor::All),
        (size(), any::<u64>()).prop_map(|(b, m)| Ctor::With(b, m)),
        (1usize..=64, any::<u64>()).prop_map(|(w, m)| Ctor::With(w * 8, m & mask(w))),
    ];
    leaf.prop_recursive(4, 16, 1, |inner| {
        (inner, prop_oneof![0usize..70, any::<usize>()])
            .prop_map(|(c, n)| Ctor::Array(Box::new(c), n))
    })
}

fn mask(words: usize) -> u64 {
    if words >= 64 {
        u64::MAX
    } else {
        (1 << words) - 1
    }
}

fn build(c: &Ctor) -> Result<Layout, Error> {
    match c {
        Ctor::None(b) => Layout::no_pointers(*b),
        Ctor::All(b) => Layout::all_pointers(*b),
        Ctor::With(b, m) => Layout::with_pointers(*b, *m),
        Ctor::Array(e, n) => Layout::array(build(e)?, *n),
    }
}

/// The pointer words of `c`, computed the obvious way (first `limit` words only).
fn naive_pointer_words(c: &Ctor, limit: usize) -> Vec<bool> {
    match c {
        Ctor::None(b) => vec![false; (b.div_ceil(8)).min(limit)],
        Ctor::All(b) => vec![true; (b.div_ceil(8)).min(limit)],
        Ctor::With(b, m) => (0..b.div_ceil(8).min(limit))
            .map(|w| w < 64 && m >> w & 1 == 1)
            .collect(),
        Ctor::Array(e, n) => {
            let elem = naive_pointer_words(e, 64);
            let mut out = Vec::new();
            'outer: for _ in 0..*n {
                for &p in &elem {
                    if out.len() == limit {
                        break 'outer;
                    }
                    out.push(p);
                }
            }
            out
        }
    }
}

proptest! {
    #[test]
    fn layout_constructors_return_layout_or_typed_error(c in ctor()) {
        match build(&c) {
            Ok(l) => {
                prop_assert!(l.bytes() > 0 && l.bytes() % 8 == 0 && l.bytes() <= 1 << 40);
                let want = naive_pointer_words(&c, 256);
                for (w, &p) in want.iter().enumerate() {
                    prop_assert_eq!(l.is_pointer_word(w), p, "word {} of {:?}", w, l);
                }
                for first in [0, 1, 63, 64, 200] {
                    let bits = l.pointer_bits(first);
                    for k in 0..64 {
                        prop_assert_eq!(bits >> k & 1 == 1, l.is_pointer_word(first + k));
                    }
                }
            }
            Err(Error::InvalidLayout { .. } | Error::LayoutTooLarge { .. }) => {}
            Err(e) => prop_assert!(false, "unexpected error {:?}", e),
        }
    }
}
