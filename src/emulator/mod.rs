//! `emulator` layer.
