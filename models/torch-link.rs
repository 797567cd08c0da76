fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={}", concat!(env!("CARGO_MANIFEST_DIR"), "/build.rs"));
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
