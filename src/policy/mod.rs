//! `policy` layer.
