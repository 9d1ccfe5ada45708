//! `framework` layer.
