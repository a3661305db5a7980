//! Integration tests of sencha-spans, in one binary.
