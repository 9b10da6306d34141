//! Relay-cell crypto: one hop's layer, a whole circuit's layers, SENDME v1 tags.
