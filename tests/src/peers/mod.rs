//! Real and misbehaving network peers for probe tests (filled in by the probe work).
