//! Link settings for the optional libtorch backend (same as models/build.rs).
//!
//! * `torch`: add an rpath to `$LIBTORCH/lib` so binaries and tests find libtorch here.
//! * `cuda`: keep `libtorch_cuda.so` as a dependency (Rust links with `--as-needed`, which
//!   would drop it and make `tch::Cuda::is_available()` false). The CUDA libraries are not
//!   present on the build machine, hence `--allow-shlib-undefined`.
fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-changed=build.rs");
    let torch = std::env::var_os("CARGO_FEATURE_TORCH").is_some();
    let cuda = std::env::var_os("CARGO_FEATURE_CUDA").is_some();
    if !torch {
        return;
    }
    if let Some(lt) = std::env::var_os("LIBTORCH") {
        let lib = std::path::Path::new(&lt).join("lib");
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
        if cuda {
            println!("cargo:rustc-link-search=native={}", lib.display());
        }
    }
    if cuda {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
        println!("cargo:rustc-link-arg=-Wl,--allow-shlib-undefined");
    }
}
