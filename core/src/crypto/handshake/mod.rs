//! Circuit-extension handshakes: CREATE_FAST and ntor.
