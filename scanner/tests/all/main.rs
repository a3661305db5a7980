//! Integration tests of the sencha marker, in one binary.
