//! The crate's error type.

/// Errors of the entropy layer.
///
/// Encoding errors ([`Error::ImpossibleSymbol`], [`Error::InvalidArgument`]) are the
/// caller's bug: the symbol or argument was outside what the model allows. Decoding
/// errors ([`Error::Malformed`]) mean the compressed bytes are damaged or were made with
/// other models; a codec maps them to its container's "malformed" error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The symbol has zero probability under the model (or is outside its alphabet), so it
    /// cannot be encoded. Avoid it by building the model from counts that include the
    /// symbol, or by coding out-of-range values through an escape (see
    /// [`crate::QuantizedCdf`]).
    #[error(
        "symbol {symbol} cannot be encoded: zero probability in a model of {num_symbols} symbols"
    )]
    ImpossibleSymbol {
        /// The symbol that was passed.
        symbol: u64,
        /// The model's alphabet size.
        num_symbols: usize,
    },
    /// The compressed data is malformed (damaged, truncated, or made with other models).
    #[error("malformed entropy-coded data: {0}")]
    Malformed(String),
    /// An argument is out of range (e.g. a model built from an empty histogram, a value
    /// wider than its bit count).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
