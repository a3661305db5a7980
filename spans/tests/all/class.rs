//! Size classes and the span layout, checked through the heap and against the spec.

use sencha_spans::span::{
    CLASS_NOSCAN, CLASS_SHIFT, LAST_WORD_MARK_MASK, LINE_BYTES, LINE_WORDS, MANY, MARK_LINE_OFFSET,
    METADATA_BYTES, OBJECT_BYTES, OWNED, PTR_BITMAP_OFFSET, PTR_BITMAP_WORDS, SCAN_LINE_OFFSET,
    SPAN_LOG_BYTES, SPAN_WORDS,
};
use sencha_spans::{Heap, Layout, MediumClass, Owner, Resolved, SPAN_BYTES, SizeClass};

use crate::support::leak_span;

/// Every offset of a span of every legal class resolves, through the page map and the magic
/// multiply, to the object that holds it, or to nothing in the metadata tail.
#[test]
fn heap_resolve_every_offset_every_legal_class() {
    let mut heap = Heap::new();
    let mut classes = 0;
    for (n, class) in SizeClass::every_legal().enumerate() {
        classes += 1;
        let noscan = n % 2 == 1;
        let base = heap.register_span(leak_span(), class, noscan).unwrap();
        let size = class.bytes();
        let end = class.capacity() * size;
        for off in 0..SPAN_BYTES {
            let got = heap.resolve(base + off);
            if off < end {
                match got {
                    Resolved::Small(o) => {
                        assert_eq!(
                            (o.span.base(), o.index, o.class, o.noscan),
                            (base, off / size, class, noscan),
                            "class {class}, offset {off}"
                        );
                        assert_eq!(o.addr(), base + off / size * size);
                    }
                    other => panic!("class {class}, offset {off}: {other:?}"),
                }
            } else {
                assert!(
                    matches!(got, Resolved::NotInHeap),
                    "class {class}, tail offset {off}: {got:?}"
                );
            }
        }
    }
    assert_eq!(classes, 63);
    assert_eq!(heap.stats().custom_spans, 63);
}

/// `capacity * size + 256 <= 8192` for every legal size, the capacity is the largest that
/// fits, and the layout constants are the spec's numbers (docs/SPAN_LAYOUT.md).
#[test]
fn class_capacity_fits_and_constants_match_spec() {
    for class in SizeClass::every_legal() {
        let (size, cap) = (class.bytes(), class.capacity());
        assert!(cap * size + 256 <= 8192, "{class}: {cap} objects");
        assert!(
            (cap + 1) * size + 256 > 8192,
            "{class}: one more object would fit"
        );
        assert!(cap <= SizeClass::MAX_OBJECTS);
        assert_eq!(class.magic(), (1u64 << 32).div_ceil(size as u64), "{class}");
        assert_eq!(class.words() * 8, size);
        assert_eq!(SizeClass::from_words(class.words() as u8), Some(class));
    }
    assert_eq!(
        SizeClass::every_legal()
            .map(|c| c.bytes())
            .collect::<Vec<_>>(),
        { (16..=512).step_by(8).collect::<Vec<_>>() }
    );

    assert_eq!((SPAN_BYTES, SPAN_LOG_BYTES, SPAN_WORDS), (8192, 13, 1024));
    assert_eq!((METADATA_BYTES, OBJECT_BYTES), (256, 7936));
    assert_eq!(PTR_BITMAP_OFFSET, 7936);
    assert_eq!(SCAN_LINE_OFFSET, 8064);
    assert_eq!(MARK_LINE_OFFSET, 8128);
    assert_eq!((PTR_BITMAP_WORDS, LINE_BYTES, LINE_WORDS), (16, 64, 8));
    assert_eq!(MARK_LINE_OFFSET + LINE_BYTES, SPAN_BYTES);
    assert_eq!((SizeClass::MIN_BYTES, SizeClass::MAX_BYTES), (16, 512));
    assert_eq!(SizeClass::MAX_OBJECTS, 496);
    assert_eq!(CLASS_SHIFT, 48);
    assert_eq!(CLASS_NOSCAN, 0x80);
    assert_eq!((OWNED, MANY), (1 << 56, 1 << 57));
    assert_eq!(LAST_WORD_MARK_MASK, (1 << 48) - 1);
    // Objects 448..495 are mark-line word 7's bits 0..47: exactly the 496 objects.
    assert_eq!(7 * 64 + LAST_WORD_MARK_MASK.count_ones() as usize, 496);

    let defaults: Vec<usize> = SizeClass::DEFAULTS.iter().map(|c| c.bytes()).collect();
    assert_eq!(
        defaults,
        [
            16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256, 288, 320,
            352, 384, 416, 448, 480, 512
        ]
    );
    let caps: Vec<usize> = SizeClass::DEFAULTS.iter().map(|c| c.capacity()).collect();
    assert_eq!(
        caps,
        [
            496, 330, 248, 165, 124, 99, 82, 70, 62, 55, 49, 45, 41, 38, 35, 33, 31, 27, 24, 22,
            20, 19, 17, 16, 15
        ]
    );
}

/// The class byte lives in mark-line word 7 as the spec says (bits 48..55, noscan = bit 55),
/// the marks of objects 448..495 below it; a mark leaves the class byte alone. (The owner bits
/// at 56 and 57 are checked by the protocol's unit tests: they are not public.)
#[test]
fn span_mark_line_word_7_layout() {
    let mut heap = Heap::new();
    let class = SizeClass::new(16).unwrap();
    let base = heap.register_span(leak_span(), class, true).unwrap();
    let span = heap.spans().find(|s| s.base() == base).unwrap();
    assert_eq!(span.class_byte(), 0x82, "fresh 16-byte noscan span");
    assert_eq!(span.owner(), Owner::Unowned);
    assert_eq!(span.marked_bits(), [0; 8]);
    let last = base + 495 * 16;
    heap.init_object(last, &Layout::no_pointers(16).unwrap())
        .unwrap();
    heap.mark_reachable(&[last]).unwrap();
    let span = heap.spans().find(|s| s.base() == base).unwrap();
    assert_eq!(
        span.marked_bits()[7],
        1 << 47,
        "class and owner bits are not marks"
    );
    assert_eq!((span.class_byte(), span.owner()), (0x82, Owner::Unowned));
    assert_eq!(span.class(), class);
}

/// docs/SPAN_LAYOUT.md's tables are generated from the code's numbers; this keeps them so.
#[test]
fn docs_span_layout_tables_match_code() {
    let doc = include_str!("../../../docs/SPAN_LAYOUT.md");
    let mut capacity_rows = 0;
    let mut overhead_rows = 0;
    let mut overhead_sum = 0.0;
    let mut medium_rows = 0;
    for line in doc.lines() {
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        if cells.len() < 2 {
            continue;
        }
        let Some(size) = cells[0]
            .strip_suffix(" B")
            .and_then(|s| s.parse::<usize>().ok())
        else {
            continue;
        };
        if cells.len() == 8 {
            // | size | pages | objects | tail bytes | tail % | smallest request | max waste % |
            // record % |   (section 12, medium classes)
            let c = MediumClass::new(size).unwrap();
            let i = MediumClass::DEFAULTS.iter().position(|&d| d == c);
            let i = i.unwrap_or_else(|| panic!("not a default medium class: {line}"));
            let span = c.span_pages() * 8192;
            let tail = span - c.capacity(span) * size;
            let smallest = if i == 0 {
                513
            } else {
                MediumClass::DEFAULTS[i - 1].bytes() + 1
            };
            let record = std::mem::size_of::<sencha_spans::LargeObject>();
            let want = [
                c.span_pages().to_string(),
                c.capacity(span).to_string(),
                tail.to_string(),
                format!("{:.2}", tail as f64 * 100.0 / span as f64),
                smallest.to_string(),
                format!("{:.2}", (size - smallest) as f64 * 100.0 / smallest as f64),
                format!("{:.2}", record as f64 * 100.0 / size as f64),
            ];
            assert_eq!(cells[1..], want, "{line}");
            assert_eq!(i, medium_rows, "medium rows in order: {line}");
            medium_rows += 1;
            continue;
        }
        let class = SizeClass::new(size).unwrap();
        let cap = class.capacity();
        let tail = 8192 - 256 - cap * size;
        match cells.len() {
            // | size | default | capacity | magic | tail waste |
            5 => {
                capacity_rows += 1;
                assert_eq!(cells[1] == "yes", class.is_default(), "{line}");
                assert_eq!(cells[2], cap.to_string(), "{line}");
                assert_eq!(cells[3], format!("{:#x}", class.magic()), "{line}");
                assert_eq!(cells[4], tail.to_string(), "{line}");
            }
            // | size | capacity | unused bytes | overhead % |
            4 => {
                overhead_rows += 1;
                let unused = 8192 - cap * size;
                let pct = unused as f64 * 100.0 / 8192.0;
                assert!(class.is_default(), "{line}");
                assert_eq!(cells[1], cap.to_string(), "{line}");
                assert_eq!(cells[2], unused.to_string(), "{line}");
                assert_eq!(cells[3], format!("{pct:.2}"), "{line}");
                overhead_sum += pct;
            }
            _ => panic!("unexpected table row: {line}"),
        }
    }
    assert_eq!(capacity_rows, 63, "capacity table rows");
    assert_eq!(overhead_rows, 25, "overhead table rows");
    assert_eq!(
        medium_rows,
        MediumClass::DEFAULTS.len(),
        "medium class table rows"
    );
    let mean = format!("{:.2}", overhead_sum / 25.0);
    assert!(
        doc.contains(&format!("mean over the 25 default classes: **{mean} %**")),
        "the doc states the mean overhead {mean} %"
    );
}
