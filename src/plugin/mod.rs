//! `plugin` layer.
