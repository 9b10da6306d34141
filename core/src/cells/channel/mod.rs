//! Channel cells: the fixed and variable-length cells a link carries, and the framer.
