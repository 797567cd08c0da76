//! lcodec-kernels: CPU compute kernels (conv, GEMM, GDN, wavelets) for the learned codecs.
