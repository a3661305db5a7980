//! Integration tests of sencha-spans, in one binary (as bumpalo does).
//!
//! - `class`: object-index arithmetic through the heap for every legal class and offset;
//!   layout constants and the tables of docs/SPAN_LAYOUT.md.
//! - `pagemap`: the page map against a `BTreeMap` model (proptest).
//! - `alloc`: the embedded allocator and sweep: fill, random marks, exact reuse, large objects.
//! - `layout`: every `Layout` constructor, nested at random, returns a layout or a typed error.
//! - `medium`: medium objects: classes, spans, sweep, allocation black, custom medium spans and
//!   their typed errors.
//! - `register`: every bad registration input and its typed error; an unchanged heap after
//!   each; custom spans and large objects through a sweep.
//! - `custom_allocator_example`: the example of docs/CUSTOM_ALLOCATOR.md, run as a test.
//! - `testing_checks` (with `--features testing`): the fuzz check functions on fixed inputs.

mod alloc;
mod class;
mod custom_allocator_example;
mod layout;
mod medium;
mod pagemap;
mod register;
mod support;
#[cfg(feature = "testing")]
mod testing_checks;

/// docs/CUSTOM_ALLOCATOR.md shows `custom_allocator_example.rs` verbatim.
#[test]
fn docs_custom_allocator_example_is_verbatim() {
    let doc = include_str!("../../../docs/CUSTOM_ALLOCATOR.md");
    let example = include_str!("custom_allocator_example.rs");
    assert!(
        doc.contains(&format!("```rust\n{example}```")),
        "docs/CUSTOM_ALLOCATOR.md must contain spans/tests/all/custom_allocator_example.rs \
         verbatim in a ```rust block"
    );
}
