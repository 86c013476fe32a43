#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub use zt_core::*;

pub mod guide;

/// Tower layers and axum extractors (feature `axum`).
#[cfg(feature = "axum")]
pub use zt_tower as axum;

/// actix-web middleware and extractors (feature `actix`).
#[cfg(feature = "actix")]
pub use zt_actix as actix;
