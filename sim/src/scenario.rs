//! Scenario files: seed, duration, topology, host groups, scripted actions and churn.
//!
//! ```toml
//! seed = 7
//! duration_ms = 20000
//!
//! [topology]            # one of: file = "graph.toml", generator = "...", or inline
//! generator = "regions" # or "full_mesh"
//! regions = ["eu", "us"]
//! nodes_per_region = 2
//! intra_ms = 5.0
//! inter_ms = 40.0
//!
//! [[group]]
//! prefix = "relay"
//! count = 4
//! role = "relay"
//!
//! [[action]]
//! at_ms = 5000
//! kind = "partition"
//! a = ["relay0"]
//! b = ["relay*"]
//!
//! [churn]
//! join_per_s = 0.1
//! role = "client"
//! ```
//!
//! Built-in action kinds: `crash`/`leave`/`restart` (`host`), `join` (`host`, `role`,
//! optional `node`), `close_link`/`hold`/`release` (`a`, `b`: host names; they act on the
//! links between the two that exist at that moment), `partition`
//! (`a`, `b`: lists of names or `prefix*`; `oneway = true` blocks only a -> b), `heal`.
//! Any other kind goes to the world's action hook, for `host`, or every host of `role`,
//! or every host.

use std::path::Path as FsPath;

use serde::{Deserialize, Serialize};

use crate::host::{Instant, SimHost};
use crate::topology::{Edge, Node, Topology, TopologyError};
use crate::trace::Trace;
use crate::world::{Churn, HostSpec, SimConfig, World};

/// One action: a `kind` and whatever parameters it takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    /// What to do.
    pub kind: String,
    /// The parameters, interpreted by the world (built-in kinds) or the action hook.
    #[serde(flatten)]
    pub params: toml::Table,
}

impl Action {
    /// An action with no parameters.
    pub fn new(kind: &str) -> Action {
        Action {
            kind: kind.to_string(),
            params: toml::Table::new(),
        }
    }

    /// Add a parameter.
    pub fn with(mut self, key: &str, value: impl Into<toml::Value>) -> Action {
        self.params.insert(key.to_string(), value.into());
        self
    }

    /// A string parameter.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.params.get(key)?.as_str()
    }

    /// An integer parameter (negative values read as absent).
    pub fn u64(&self, key: &str) -> Option<u64> {
        u64::try_from(self.params.get(key)?.as_integer()?).ok()
    }

    /// A boolean parameter.
    pub fn bool(&self, key: &str) -> Option<bool> {
        self.params.get(key)?.as_bool()
    }

    /// A list of strings (a single string reads as a list of one).
    pub fn strs(&self, key: &str) -> Vec<String> {
        match self.params.get(key) {
            Some(toml::Value::String(s)) => vec![s.clone()],
            Some(toml::Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// An action at a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimedAction {
    /// When, in ms from the start.
    pub at_ms: u64,
    /// What.
    #[serde(flatten)]
    pub action: Action,
}

/// Where the network graph comes from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopologySpec {
    /// A graph file, relative to the scenario file.
    pub file: Option<String>,
    /// `full_mesh` or `regions`.
    pub generator: Option<String>,
    /// full_mesh: number of nodes.
    pub nodes: Option<usize>,
    /// full_mesh: latency range, ms.
    pub latency_ms: Option<(f64, f64)>,
    /// regions: region names.
    pub regions: Option<Vec<String>>,
    /// regions: nodes per region.
    pub nodes_per_region: Option<usize>,
    /// regions: latency inside a region, ms.
    pub intra_ms: Option<f64>,
    /// regions: latency between regions, ms.
    pub inter_ms: Option<f64>,
    /// Generators: jitter of every edge, ms.
    pub jitter_ms: Option<f64>,
    /// Generators: up and down bandwidth of every node, bytes/s (0 = unlimited).
    pub bandwidth_bps: Option<u64>,
    /// Inline graph nodes.
    #[serde(default)]
    pub node: Vec<Node>,
    /// Inline graph edges.
    #[serde(default)]
    pub edge: Vec<Edge>,
}

impl TopologySpec {
    /// Build the graph; `base` is the scenario file's folder, `seed` seeds generators.
    pub fn resolve(&self, base: &FsPath, seed: u64) -> Result<Topology, ScenarioError> {
        let jitter = self.jitter_ms.unwrap_or(0.0);
        let bw = self.bandwidth_bps.unwrap_or(0);
        let t = if let Some(file) = &self.file {
            let text = std::fs::read_to_string(base.join(file))
                .map_err(|e| ScenarioError::Io(format!("{file}: {e}")))?;
            Topology::from_toml(&text)?
        } else {
            match self.generator.as_deref() {
                Some("full_mesh") => Topology::full_mesh(
                    self.nodes.unwrap_or(1),
                    self.latency_ms.unwrap_or((10.0, 50.0)),
                    jitter,
                    bw,
                    seed,
                ),
                Some("regions") => Topology::regions(
                    self.regions.as_deref().unwrap_or(&[]),
                    self.nodes_per_region.unwrap_or(1),
                    self.intra_ms.unwrap_or(5.0),
                    self.inter_ms.unwrap_or(50.0),
                    jitter,
                    bw,
                ),
                Some(other) => return Err(ScenarioError::Invalid(format!("generator {other:?}"))),
                None if self.node.is_empty() => Topology::single(1.0),
                None => Topology {
                    nodes: self.node.clone(),
                    edges: self.edge.clone(),
                },
            }
        };
        t.validate()?;
        Ok(t)
    }
}

/// A group of hosts sharing a role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// Hosts are named `<prefix><i>`.
    pub prefix: String,
    /// How many.
    pub count: usize,
    /// Passed to the host factory.
    #[serde(default)]
    pub role: String,
    /// Graph nodes to attach to, round-robin (default: all nodes, round-robin).
    #[serde(default)]
    pub nodes: Vec<String>,
}

/// A scenario file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Master seed.
    pub seed: u64,
    /// How long to run, ms.
    pub duration_ms: u64,
    /// The network graph.
    #[serde(default)]
    pub topology: TopologySpec,
    /// Link model knobs.
    #[serde(default)]
    pub config: SimConfig,
    /// Host groups, started at time zero in order.
    #[serde(default)]
    pub group: Vec<Group>,
    /// Scripted actions and faults.
    #[serde(default)]
    pub action: Vec<TimedAction>,
    /// Random joins and leaves.
    pub churn: Option<Churn>,
    /// Protocol knobs of the Peersm nodes (default: the core's defaults).
    #[serde(default)]
    pub peersm: PeersmKnobs,
}

/// Protocol knobs of every Peersm node of a scenario (`[peersm]`), for studies of the
/// content distribution; a knob left out keeps the core's default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PeersmKnobs {
    /// ORDB circuits a node keeps (`PeersmConfig::ordb_circuits`).
    pub ordb_circuits: Option<usize>,
    /// Streams a node serves from its store at once (`OrdbConfig::max_serving`).
    pub max_serving: Option<usize>,
    /// Bytes of relayed file cells an ORDB keeps to serve again
    /// (`OrdbConfig::relay_cache_budget`; 0 turns the relay cache off).
    pub relay_cache_budget: Option<usize>,
    /// Holders a FIND_VALUE of an ORDB adds to the name's list
    /// (`OrdbConfig::find_value_peers`).
    pub find_value_peers: Option<usize>,
    /// ORDB circuits a download uses at once (`DownloadConfig::circuits`).
    pub download_circuits: Option<usize>,
    /// Blocks in a download's window (`DownloadConfig::window_blocks`).
    pub download_window_blocks: Option<u16>,
    /// Blocks a download's window may grow to (`DownloadConfig::window_blocks_max`).
    pub download_window_blocks_max: Option<u16>,
    /// Seconds of data at a download's rate its window holds
    /// (`DownloadConfig::window_time`).
    pub download_window_secs: Option<u64>,
    /// Chunks per GET (`DownloadConfig::block_chunks`).
    pub download_block_chunks: Option<u16>,
    /// GETs in flight per circuit (`DownloadConfig::pipeline`).
    pub download_pipeline: Option<usize>,
    /// Partial holders a FIND_VALUE answer names first
    /// (`DhtConfig::answer_partial_lead`).
    pub answer_partial_lead: Option<usize>,
    /// Partial holders lead in turn (`DhtConfig::answer_partial_turn`).
    pub answer_partial_turn: Option<bool>,
    /// Seconds a DHT record of part of a file lives unless its ORDB STOREs it again
    /// (`DhtConfig::partial_record_ttl`; unset, such records live as long as others).
    pub partial_record_ttl_secs: Option<u64>,
    /// A publisher STOREs its own record in the DHT too, beside its ORDBs'
    /// (`OrdbConfig::store_own_record`; the behaviour before 2026-12-08).
    pub store_own_record: Option<bool>,
}

impl PeersmKnobs {
    /// Set the knobs given on `p`.
    pub fn apply(&self, p: &mut onionpeer_core::node::config::PeersmConfig) {
        let d = &mut p.ordb.download;
        set(&mut p.ordb_circuits, self.ordb_circuits);
        set(&mut p.ordb.max_serving, self.max_serving);
        set(&mut p.ordb.relay_cache_budget, self.relay_cache_budget);
        set(&mut p.ordb.find_value_peers, self.find_value_peers);
        set(&mut p.ordb.store_own_record, self.store_own_record);
        set(&mut d.circuits, self.download_circuits);
        set(&mut d.window_blocks, self.download_window_blocks);
        set(&mut d.window_blocks_max, self.download_window_blocks_max);
        if let Some(secs) = self.download_window_secs {
            d.window_time = std::time::Duration::from_secs(secs);
        }
        set(&mut d.block_chunks, self.download_block_chunks);
        set(&mut d.pipeline, self.download_pipeline);
        set(&mut p.dht.answer_partial_lead, self.answer_partial_lead);
        set(&mut p.dht.answer_partial_turn, self.answer_partial_turn);
        set(
            &mut p.dht.partial_record_ttl,
            self.partial_record_ttl_secs
                .map(|s| Some(core::time::Duration::from_secs(s))),
        );
    }
}

fn set<T>(field: &mut T, knob: Option<T>) {
    if let Some(v) = knob {
        *field = v;
    }
}

/// Why a scenario could not be loaded.
#[derive(Debug, Clone, PartialEq)]
pub enum ScenarioError {
    /// A file could not be read.
    Io(String),
    /// The TOML does not describe a scenario.
    Parse(String),
    /// A value is out of place.
    Invalid(String),
    /// The topology is unusable.
    Topology(TopologyError),
}

impl From<TopologyError> for ScenarioError {
    fn from(e: TopologyError) -> Self {
        ScenarioError::Topology(e)
    }
}

impl std::fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScenarioError::Io(e) => write!(f, "read: {e}"),
            ScenarioError::Parse(e) => write!(f, "parse: {e}"),
            ScenarioError::Invalid(e) => write!(f, "invalid: {e}"),
            ScenarioError::Topology(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ScenarioError {}

impl Scenario {
    /// Parse a scenario from TOML text.
    pub fn from_toml(text: &str) -> Result<Scenario, ScenarioError> {
        toml::from_str(text).map_err(|e| ScenarioError::Parse(e.to_string()))
    }

    /// Read a scenario file.
    pub fn load(path: &FsPath) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ScenarioError::Io(format!("{}: {e}", path.display())))?;
        Scenario::from_toml(&text)
    }

    /// The end of the run.
    pub fn end(&self) -> Instant {
        Instant::from_millis(self.duration_ms)
    }

    /// Build the world: topology, hosts of every group, scripted actions, churn. Hooks can
    /// be set on the result before [`World::run_until`]`(scenario.end())`. `base` is the
    /// folder that relative file names in the scenario are read from.
    pub fn build<H: SimHost>(
        &self,
        base: &FsPath,
        trace: Trace,
        factory: impl FnMut(&HostSpec<'_>) -> H + 'static,
    ) -> Result<World<H>, ScenarioError> {
        let topology = self.topology.resolve(base, self.seed)?;
        for g in &self.group {
            if let Some(n) = g.nodes.iter().find(|n| topology.node_index(n).is_none()) {
                return Err(ScenarioError::Invalid(format!(
                    "group {}: node {n:?}",
                    g.prefix
                )));
            }
        }
        let mut world = World::new(self.seed, self.config.clone(), topology, trace, factory);
        for g in &self.group {
            for i in 0..g.count {
                let node = (!g.nodes.is_empty()).then(|| g.nodes[i % g.nodes.len()].as_str());
                world.add_host(&format!("{}{i}", g.prefix), &g.role, node);
            }
        }
        for a in &self.action {
            world.schedule(Instant::from_millis(a.at_ms), a.action.clone());
        }
        if let Some(churn) = &self.churn {
            world.set_churn(churn.clone());
        }
        Ok(world)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_doc_example() {
        let text = include_str!("scenario.rs")
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| {
                l.strip_prefix("//! ")
                    .unwrap_or(l.trim_start_matches("//!"))
            })
            .collect::<Vec<_>>()
            .join("\n");
        let s = Scenario::from_toml(&text).unwrap();
        assert_eq!(s.seed, 7);
        assert_eq!(s.group[0].count, 4);
        assert_eq!(s.action[0].action.kind, "partition");
        assert_eq!(s.action[0].action.strs("b"), ["relay*"]);
        let t = s.topology.resolve(FsPath::new("."), s.seed).unwrap();
        assert_eq!(t.nodes.len(), 4);
        assert_eq!(s.churn.unwrap().join_per_s, 0.1);
    }

    #[test]
    fn rejects_unknown_fields_and_generators() {
        assert!(matches!(
            Scenario::from_toml("seed = 1\nduration_ms = 1\nbogus = 2\n"),
            Err(ScenarioError::Parse(_))
        ));
        let s = Scenario::from_toml("seed = 1\nduration_ms = 1\n[topology]\ngenerator = \"x\"\n")
            .unwrap();
        assert!(s.topology.resolve(FsPath::new("."), 1).is_err());
    }
}
