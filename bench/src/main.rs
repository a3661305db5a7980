//! sencha's command-line program.
fn main() {}
