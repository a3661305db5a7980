//! Builds the Boehm GC peer (`bench/csrc/`) when the `boehm` feature is on; does nothing
//! otherwise.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "boehm")]
    boehm();
}

/// Compiles `csrc/boehm_peer.c` against the system's bdwgc (`gc.h`, `libgc`) and links it.
#[cfg(feature = "boehm")]
fn boehm() {
    for f in ["csrc/boehm_peer.c", "csrc/boehm_peer.h"] {
        println!("cargo:rerun-if-changed={f}");
    }
    let built = cc::Build::new()
        .file("csrc/boehm_peer.c")
        .include("csrc")
        .define("GC_THREADS", None)
        .opt_level(2)
        .warnings(true)
        .extra_warnings(true)
        .try_compile("sencha_boehm_peer");
    if let Err(e) = built {
        panic!(
            "cannot build the Boehm GC peer: {e}\n\
             It needs a C compiler and bdwgc's headers and library: on Debian or Ubuntu, \
             `apt-get install -y libgc-dev`."
        );
    }
    println!("cargo:rustc-link-lib=gc");
}
