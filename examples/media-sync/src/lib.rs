//! The media-sync example (being written).
