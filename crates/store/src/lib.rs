//! Persistence behind the [`Store`] trait (in progress).
