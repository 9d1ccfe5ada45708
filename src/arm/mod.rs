//! `arm` layer.
