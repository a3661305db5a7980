//! Cross-tier equivalence tests.
