//! The Lambda Runtime API.
