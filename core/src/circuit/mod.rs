//! Circuits: the OP side that builds a path and the OR side that relays, and the flow
//! control both share.

pub mod flow;
