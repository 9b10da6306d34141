//! The TOML config file, and the one-line form of a relay that `relay` prints and
//! `proxy --hop` reads.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use onionpeer_core::crypto::identity::PeerId;
use onionpeer_core::dir::{base64_decode, base64_encode_unpadded};
use onionpeer_core::node::api::RelayTarget;
use serde::Deserialize;

use crate::webrtc_peer::LinkArgs;
use crate::{BridgeArgs, DemoArgs, FirstHopArg, PeerArgs, ProxyArgs, RelayArgs};

/// Everything a config file can set: one table per subcommand.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// `[proxy]`.
    #[serde(default)]
    pub proxy: ProxyFile,
    /// `[relay]`.
    #[serde(default)]
    pub relay: RelayFile,
    /// `[demo]`.
    #[serde(default)]
    pub demo: DemoFile,
    /// `[peer]`.
    #[serde(default)]
    pub peer: PeerFile,
    /// `[bridge]`.
    #[serde(default)]
    pub bridge: BridgeFile,
}

/// `[peer]`: the flags of `onionpeer peer`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerFile {
    or_port: Option<SocketAddr>,
    bridge: Option<String>,
    webrtc: Option<SocketAddr>,
    browser_webrtc: Option<SocketAddr>,
    facilitator: Option<bool>,
}

/// `[bridge]`: the flags of `onionpeer bridge`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeFile {
    or_port: Option<SocketAddr>,
    ws: Option<SocketAddr>,
    http: Option<SocketAddr>,
    site: Option<PathBuf>,
    webrtc: Option<SocketAddr>,
    browser_webrtc: Option<SocketAddr>,
    #[serde(default)]
    fellow: Vec<String>,
}

impl PeerArgs {
    /// Fill what the command line left out from the file.
    pub fn merge(mut self, f: PeerFile) -> PeerArgs {
        self.or_port = self.or_port.or(f.or_port);
        self.bridge = self.bridge.or(f.bridge);
        self.links = self.links.merge(f.webrtc, f.browser_webrtc);
        self.facilitator |= f.facilitator.unwrap_or(false);
        self
    }
}

impl BridgeArgs {
    /// Fill what the command line left out from the file.
    pub fn merge(mut self, f: BridgeFile) -> BridgeArgs {
        self.or_port = self.or_port.or(f.or_port);
        self.ws = self.ws.or(f.ws);
        self.http = self.http.or(f.http);
        self.site = self.site.or(f.site);
        self.links = self.links.merge(f.webrtc, f.browser_webrtc);
        if self.fellow.is_empty() {
            self.fellow = f.fellow;
        }
        self
    }
}

/// `[proxy]`: the flags of `onionpeer proxy`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyFile {
    socks: Option<SocketAddr>,
    dir_authorities: Option<PathBuf>,
    #[serde(default)]
    hop: Vec<String>,
    first_hop: Option<FirstHopArg>,
    allow_same_subnet: Option<bool>,
    webrtc: Option<SocketAddr>,
}

/// `[relay]`: the flags of `onionpeer relay`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayFile {
    or_port: Option<SocketAddr>,
    exit_policy: Option<String>,
    webrtc: Option<SocketAddr>,
}

/// `[demo]`: the flags of `onionpeer demo`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoFile {
    size_mib: Option<usize>,
    relays: Option<usize>,
    first_hop: Option<FirstHopArg>,
}

impl ConfigFile {
    /// Read and parse `path`.
    pub fn load(path: &Path) -> Result<ConfigFile, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

impl ProxyArgs {
    /// Fill what the command line left out from the file.
    pub fn merge(mut self, f: ProxyFile) -> ProxyArgs {
        self.socks = self.socks.or(f.socks);
        self.dir_authorities = self.dir_authorities.or(f.dir_authorities);
        if self.hops.is_empty() {
            self.hops = f.hop;
        }
        self.first_hop = self.first_hop.or(f.first_hop);
        self.allow_same_subnet |= f.allow_same_subnet.unwrap_or(false);
        self.webrtc = self.webrtc.or(f.webrtc);
        self
    }
}

impl RelayArgs {
    /// Fill what the command line left out from the file.
    pub fn merge(mut self, f: RelayFile) -> RelayArgs {
        self.or_port = self.or_port.or(f.or_port);
        self.exit_policy = self.exit_policy.or(f.exit_policy);
        self.webrtc = self.webrtc.or(f.webrtc);
        self
    }
}

impl DemoArgs {
    /// Fill what the command line left out from the file.
    pub fn merge(mut self, f: DemoFile) -> DemoArgs {
        self.size_mib = self.size_mib.or(f.size_mib);
        self.relays = self.relays.or(f.relays);
        self.first_hop = self.first_hop.or(f.first_hop);
        self
    }
}

/// `ADDR,FINGERPRINT,NTOR_KEY[,ED_ID]` (keys in unpadded base64).
pub fn relay_line(t: &RelayTarget) -> String {
    let mut s = format!(
        "{},{},{}",
        t.addr,
        t.id,
        base64_encode_unpadded(&t.ntor_key)
    );
    if let Some(ed) = t.ed_id {
        s.push(',');
        s.push_str(&base64_encode_unpadded(&ed));
    }
    s
}

/// The inverse of [`relay_line`].
pub fn parse_relay_line(line: &str) -> Result<RelayTarget, String> {
    let bad = |what: &str| format!("bad relay {line:?}: {what}");
    let mut parts = line.trim().split(',');
    let addr = parts
        .next()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| bad("address"))?;
    let id = parts
        .next()
        .and_then(|a| a.parse::<PeerId>().ok())
        .ok_or_else(|| bad("fingerprint"))?;
    let key32 =
        |s: Option<&str>| -> Option<[u8; 32]> { base64_decode(s?).and_then(|v| v.try_into().ok()) };
    let ntor_key = key32(parts.next()).ok_or_else(|| bad("ntor key"))?;
    let ed_id = match parts.next() {
        None => None,
        s => Some(key32(s).ok_or_else(|| bad("ed25519 id"))?),
    };
    Ok(RelayTarget {
        addr,
        id,
        ntor_key,
        ed_id,
    })
}

impl LinkArgs {
    /// Fill what the command line left out from the file.
    fn merge(self, webrtc: Option<SocketAddr>, browser_webrtc: Option<SocketAddr>) -> LinkArgs {
        LinkArgs {
            webrtc: self.webrtc.or(webrtc),
            browser_webrtc: self.browser_webrtc.or(browser_webrtc),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_line_round_trips() {
        let t = RelayTarget {
            addr: "127.0.0.1:9001".parse().unwrap(),
            id: PeerId([0xAB; 20]),
            ntor_key: [7; 32],
            ed_id: Some([9; 32]),
        };
        assert_eq!(parse_relay_line(&relay_line(&t)).unwrap(), t);
        let t = RelayTarget { ed_id: None, ..t };
        assert_eq!(parse_relay_line(&relay_line(&t)).unwrap(), t);
        assert!(parse_relay_line("127.0.0.1:1,zz,aa").is_err());
    }

    #[test]
    fn config_file_sets_every_flag() {
        let f: ConfigFile = toml::from_str(
            r#"
            [proxy]
            socks = "127.0.0.1:9150"
            dir_authorities = "auths.torrc"
            first_hop = "fast"
            allow_same_subnet = true
            [relay]
            or_port = "127.0.0.1:9002"
            exit_policy = "accept *:80,reject *:*"
            [demo]
            size_mib = 2
            relays = 5
            "#,
        )
        .unwrap();
        let p = ProxyArgs::default().merge(f.proxy);
        assert_eq!(p.socks, Some("127.0.0.1:9150".parse().unwrap()));
        assert_eq!(p.first_hop, Some(FirstHopArg::Fast));
        assert!(p.allow_same_subnet);
        let r = RelayArgs {
            or_port: Some("127.0.0.1:1".parse().unwrap()),
            ..RelayArgs::default()
        }
        .merge(f.relay);
        // The command line wins.
        assert_eq!(r.or_port, Some("127.0.0.1:1".parse().unwrap()));
        assert_eq!(r.exit_policy.as_deref(), Some("accept *:80,reject *:*"));
        assert_eq!(DemoArgs::default().merge(f.demo).relays, Some(5));
        assert!(toml::from_str::<ConfigFile>("[proxy]\nsocks_port = 1").is_err());
    }
}
