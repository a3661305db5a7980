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

/// Issue 10, item 7: the 600-byte object with pointers in words 0 and 70 that a client could
/// not express before, a header followed by elements of more than 64 words, and an array of
/// such an object.
#[test]
fn layout_expresses_runtime_shapes() {
    let odd = Layout::from_pointer_words(600, &[0, 70]).unwrap();
    let words: Vec<usize> = (0..odd.words())
        .filter(|&w| odd.is_pointer_word(w))
        .collect();
    assert_eq!(words, [0, 70]);
    assert_eq!((odd.pointer_bits(0), odd.pointer_bits(64)), (1, 1 << 6));
    assert_eq!(odd, Layout::from_bitmap(600, &[1, 1 << 6]).unwrap());
    // A header of 3 words (a class pointer in word 1), then 4 elements of 100 words with
    // pointers in words 0 and 99.
    let elem = Layout::from_pointer_words(800, &[0, 99]).unwrap();
    let obj =
        Layout::header_then_array(Layout::with_pointers(24, 0b010).unwrap(), elem, 4).unwrap();
    assert_eq!(obj.bytes(), 24 + 4 * 800);
    let words: Vec<usize> = (0..obj.words())
        .filter(|&w| obj.is_pointer_word(w))
        .collect();
    assert_eq!(words, [1, 3, 102, 103, 202, 203, 302, 303, 402]);
    let arr = Layout::array(odd, 3).unwrap();
    let words: Vec<usize> = (0..arr.words())
        .filter(|&w| arr.is_pointer_word(w))
        .collect();
    assert_eq!(words, [0, 70, 75, 145, 150, 220]);
    // No elements: the header alone.
    let h = Layout::with_pointers(40, 0b10001).unwrap();
    assert_eq!(Layout::header_then_array(h, elem, 0).unwrap(), h);
}

/// A constructor call, possibly nesting others.
#[derive(Clone, Debug)]
enum Ctor {
    None(usize),
    All(usize),
    With(usize, u64),
    Words(usize, Vec<usize>),
    Bitmap(usize, Vec<u64>),
    Array(Box<Ctor>, usize),
    HeaderArray(Box<Ctor>, Box<Ctor>, usize),
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        0usize..600,
        600usize..3000,
        Just(usize::MAX),
        Just(1 << 40),
        Just((1 << 40) + 1),
        any::<usize>()
    ]
}

fn word_index() -> impl Strategy<Value = usize> {
    prop_oneof![
        8 => 0usize..400,
        1 => Just(sencha_spans::MAX_BITMAP_WORDS - 1),
        1 => Just(sencha_spans::MAX_BITMAP_WORDS),
        1 => any::<usize>(),
    ]
}

fn ctor() -> impl Strategy<Value = Ctor> {
    let leaf = prop_oneof![
        size().prop_map(Ctor::None),
        size().prop_map(Ctor::All),
        (size(), any::<u64>()).prop_map(|(b, m)| Ctor::With(b, m)),
        (1usize..=64, any::<u64>()).prop_map(|(w, m)| Ctor::With(w * 8, m & mask(w))),
        (size(), prop::collection::vec(word_index(), 0..6)).prop_map(|(b, w)| Ctor::Words(b, w)),
        (
            1usize..400,
            prop::collection::vec(any::<prop::sample::Index>(), 0..6)
        )
            .prop_map(|(n, ix)| Ctor::Words(n * 8, ix.iter().map(|i| i.index(n)).collect())),
        (size(), prop::collection::vec(any::<u64>(), 0..4)).prop_map(|(b, m)| Ctor::Bitmap(b, m)),
        (1usize..256, prop::collection::vec(any::<u64>(), 0..4)).prop_map(|(n, mut m)| {
            // Clear the bits past the object so that most of these are valid.
            for (i, b) in m.iter_mut().enumerate() {
                *b &= mask(n.saturating_sub(i * 64));
            }
            Ctor::Bitmap(n * 8, m)
        }),
    ];
    leaf.prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            (inner.clone(), prop_oneof![0usize..70, any::<usize>()])
                .prop_map(|(c, n)| Ctor::Array(Box::new(c), n)),
            (
                inner.clone(),
                inner,
                prop_oneof![0usize..40, any::<usize>()]
            )
                .prop_map(|(h, e, n)| Ctor::HeaderArray(Box::new(h), Box::new(e), n)),
        ]
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
        Ctor::Words(b, w) => Layout::from_pointer_words(*b, w),
        Ctor::Bitmap(b, m) => Layout::from_bitmap(*b, m),
        Ctor::Array(e, n) => Layout::array(build(e)?, *n),
        Ctor::HeaderArray(h, e, n) => Layout::header_then_array(build(h)?, build(e)?, *n),
    }
}

/// The size in words of a layout that `c` built successfully.
fn naive_words(c: &Ctor) -> usize {
    match c {
        Ctor::None(b)
        | Ctor::All(b)
        | Ctor::With(b, _)
        | Ctor::Words(b, _)
        | Ctor::Bitmap(b, _) => b.div_ceil(8),
        Ctor::Array(e, n) => naive_words(e) * n,
        Ctor::HeaderArray(h, e, n) => naive_words(h) + naive_words(e) * n,
    }
}

/// Whether word `w` (inside the object) of what `c` built holds a pointer, the obvious way.
fn naive_is_pointer(c: &Ctor, w: usize) -> bool {
    match c {
        Ctor::None(_) => false,
        Ctor::All(_) => true,
        Ctor::With(_, m) => w < 64 && m >> w & 1 == 1,
        Ctor::Words(_, ws) => ws.contains(&w),
        Ctor::Bitmap(_, m) => m.get(w / 64).is_some_and(|b| b >> (w % 64) & 1 == 1),
        Ctor::Array(e, _) => naive_is_pointer(e, w % naive_words(e)),
        Ctor::HeaderArray(h, e, _) => {
            let hw = naive_words(h);
            if w < hw {
                naive_is_pointer(h, w)
            } else {
                naive_is_pointer(e, (w - hw) % naive_words(e))
            }
        }
    }
}

proptest! {
    #[test]
    fn layout_constructors_return_layout_or_typed_error(
        c in ctor(),
        probes in prop::collection::vec(any::<prop::sample::Index>(), 8),
    ) {
        match build(&c) {
            Ok(l) => {
                prop_assert!(l.bytes() > 0 && l.bytes() % 8 == 0 && l.bytes() <= 1 << 40);
                let words = l.words();
                prop_assert_eq!(words, naive_words(&c));
                // The first and last 256 words, and a few anywhere.
                let near = (0..words.min(256)).chain(words.saturating_sub(256)..words);
                let far = probes.iter().map(|i| i.index(words));
                for w in near.chain(far) {
                    prop_assert_eq!(
                        l.is_pointer_word(w), naive_is_pointer(&c, w), "word {} of {:?}", w, l
                    );
                }
                prop_assert!(!l.is_pointer_word(words));
                let firsts = [0, 1, 63, 64, 200, words.saturating_sub(1), words.saturating_sub(70)];
                let firsts = firsts.into_iter().chain(probes.iter().map(|i| i.index(words)));
                for first in firsts {
                    let bits = l.pointer_bits(first);
                    for k in 0..64 {
                        prop_assert_eq!(bits >> k & 1 == 1, l.is_pointer_word(first + k));
                    }
                }
                if words <= 4096 {
                    prop_assert_eq!(l.has_pointers(), (0..words).any(|w| l.is_pointer_word(w)));
                }
            }
            Err(Error::InvalidLayout { .. } | Error::LayoutTooLarge { .. }) => {}
            Err(e) => prop_assert!(false, "unexpected error {:?}", e),
        }
    }
}
