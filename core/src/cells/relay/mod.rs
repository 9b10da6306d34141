//! Relay cells: the header inside a RELAY cell body and every relay message.
