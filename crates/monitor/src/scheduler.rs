//! The check scheduler (in progress).
