//! The wire vocabulary: channel cells (what links carry) and relay cells (what circuits
//! carry inside RELAY and RELAY_EARLY cells).

pub mod channel;
pub mod relay;
