//! Compiles the thread-affine C library used by `examples/thread_affine.rs`.

fn main() {
    println!("cargo:rerun-if-changed=csrc/affine.c");
    cc::Build::new().file("csrc/affine.c").compile("affine");
}
