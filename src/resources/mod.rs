//! `resources` layer.
