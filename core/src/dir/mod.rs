//! The Tor directory, client side (dir-spec, path-spec): trusted authorities, their key
//! certificates, the microdesc consensus, microdescriptors, the HTTP exchange that
//! fetches them, and path selection over the result.
//!
//! Everything here is pure: the runtime moves bytes (over a DirPort or a `BEGIN_DIR`
//! stream) and passes the time in as Unix seconds; the parsers never panic and bound
//! what they accept.
//!
//! A client's bootstrap, in this module's terms:
//! 1. [`parse_dir_authorities`] on the configured `DirAuthority` lines.
//! 2. Fetch [`CONSENSUS_MICRODESC_PATH`] ([`build_request`], [`HttpResponseParser`]),
//!    [`UnverifiedConsensus::parse`] it.
//! 3. Fetch [`authcerts_path`] for [`UnverifiedConsensus::missing_certs`],
//!    [`parse_authcerts`], [`UnverifiedAuthCert::verify`] each.
//! 4. [`UnverifiedConsensus::verify`] with the authorities, certificates and `now`.
//! 5. Fetch [`microdesc_paths`] for the consensus's `m` digests, [`parse_microdescs`].
//! 6. [`NetDir::new`], then [`select_path`].

mod authcert;
mod authority;
mod consensus;
mod encoding;
mod http;
mod microdesc;
mod netdir;
mod path;
mod rsa_sig;
mod tokens;

#[cfg(test)]
mod tests;

pub use authcert::{
    AuthCert, MAX_CERT_LEN, MAX_CERTS_PER_DOCUMENT, UnverifiedAuthCert, VerifyError,
    parse_authcerts,
};
pub use authority::{DirAuthority, parse_dir_authorities};
pub use consensus::{
    Consensus, DigestAlgorithm, DirSignature, DirSource, Lifetime, MAX_CONSENSUS_LEN, MAX_ROUTERS,
    MAX_SIGNATURES, REASONABLY_LIVE_SECS, RelayFlags, RouterStatus, UnverifiedConsensus,
};
pub use encoding::{
    base64_decode, base64_encode_unpadded, hex_decode_array, hex_encode_upper, parse_datetime,
};
pub use http::{
    HttpError, HttpResponse, HttpResponseParser, MAX_HEAD_LEN, MAX_HEADERS, build_request,
};
pub use microdesc::{
    ALL_AUTHCERTS_PATH, CONSENSUS_MICRODESC_PATH, FamilyMember, MAX_MICRODESCS_PER_DOCUMENT,
    MICRODESCS_PER_REQUEST, Microdesc, PortPolicy, authcerts_path, microdesc_paths,
    parse_microdescs,
};
pub use netdir::{NetDir, Relay};
pub use path::{
    Path, PathConfig, PathError, Position, is_eligible, relay_weight, select_path, select_relay,
};
pub use rsa_sig::DirRsaKey;
pub use tokens::{
    Item, MAX_LINE_LEN, MAX_OBJECT_LEN, Object, ParseError, Tokenizer, split_at_keyword,
};
