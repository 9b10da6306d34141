//! The network graph hosts attach to, in the spirit of Shadow's network graph.
//!
//! Graph nodes carry the bandwidth of each host attached to them; edges carry latency,
//! jitter and a failure rate (loss is modelled as link failure, since links are
//! reliable byte streams). The path between two hosts is the lowest-latency path between
//! their nodes; hosts on the same node use a self-edge if the graph has one, else a zero
//! path.

use std::collections::BTreeMap;
use std::time::Duration;

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// A graph node: a place hosts attach to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// The node's name, used by edges and host groups.
    pub id: String,
    /// Uplink capacity of each attached host, bytes/s; 0 means unlimited.
    #[serde(default)]
    pub up_bps: u64,
    /// Downlink capacity of each attached host, bytes/s; 0 means unlimited.
    #[serde(default)]
    pub down_bps: u64,
}

/// An undirected graph edge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Edge {
    /// One end (a node id).
    pub a: String,
    /// The other end (a node id); equal to `a` for the latency between hosts on one node.
    pub b: String,
    /// One-way latency, milliseconds.
    pub latency_ms: f64,
    /// Maximum extra one-way delay, milliseconds, drawn uniformly per chunk.
    #[serde(default)]
    pub jitter_ms: f64,
    /// Failures per second of an established link over this edge (a Poisson rate).
    #[serde(default)]
    pub fail_rate: f64,
}

/// A network graph.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Topology {
    /// The nodes (`[[node]]` in TOML).
    #[serde(default, rename = "node")]
    pub nodes: Vec<Node>,
    /// The edges (`[[edge]]` in TOML).
    #[serde(default, rename = "edge")]
    pub edges: Vec<Edge>,
}

/// The network path between two hosts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Path {
    /// One-way latency.
    pub latency: Duration,
    /// Maximum extra one-way delay per chunk.
    pub jitter: Duration,
    /// Failures per second of a link over the path.
    pub fail_rate: f64,
}

impl Path {
    /// A path with no delay and no failures.
    pub const ZERO: Path = Path {
        latency: Duration::ZERO,
        jitter: Duration::ZERO,
        fail_rate: 0.0,
    };
}

/// Why a graph could not be used.
#[derive(Debug, Clone, PartialEq)]
pub enum TopologyError {
    /// An edge names a node that does not exist.
    UnknownNode(String),
    /// Two nodes have the same id.
    DuplicateNode(String),
    /// The graph has no node to attach hosts to.
    Empty,
    /// The TOML text is not a graph.
    Parse(String),
}

impl std::fmt::Display for TopologyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TopologyError::UnknownNode(n) => write!(f, "edge names unknown node {n:?}"),
            TopologyError::DuplicateNode(n) => write!(f, "node {n:?} defined twice"),
            TopologyError::Empty => write!(f, "topology has no nodes"),
            TopologyError::Parse(e) => write!(f, "bad topology: {e}"),
        }
    }
}

impl std::error::Error for TopologyError {}

fn ms(x: f64) -> Duration {
    Duration::from_nanos((x.max(0.0) * 1e6).round() as u64)
}

impl Topology {
    /// Parse a graph from TOML (`[[node]]` and `[[edge]]` tables) and check it.
    pub fn from_toml(text: &str) -> Result<Topology, TopologyError> {
        let t: Topology = toml::from_str(text).map_err(|e| TopologyError::Parse(e.to_string()))?;
        t.validate()?;
        Ok(t)
    }

    /// Check that node ids are unique, edges name existing nodes and there is a node.
    pub fn validate(&self) -> Result<(), TopologyError> {
        if self.nodes.is_empty() {
            return Err(TopologyError::Empty);
        }
        let mut seen = BTreeMap::new();
        for n in &self.nodes {
            if seen.insert(n.id.as_str(), ()).is_some() {
                return Err(TopologyError::DuplicateNode(n.id.clone()));
            }
        }
        for e in &self.edges {
            for end in [&e.a, &e.b] {
                if !seen.contains_key(end.as_str()) {
                    return Err(TopologyError::UnknownNode(end.clone()));
                }
            }
        }
        Ok(())
    }

    /// The index of node `id`.
    pub fn node_index(&self, id: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }

    /// One node, unlimited bandwidth, hosts on it `latency_ms` apart.
    pub fn single(latency_ms: f64) -> Topology {
        Topology {
            nodes: vec![Node {
                id: "n0".into(),
                up_bps: 0,
                down_bps: 0,
            }],
            edges: vec![Edge {
                a: "n0".into(),
                b: "n0".into(),
                latency_ms,
                jitter_ms: 0.0,
                fail_rate: 0.0,
            }],
        }
    }

    /// `n` nodes, every pair joined by an edge whose latency is drawn uniformly from
    /// `latency_ms` (seeded, so the same seed gives the same graph).
    pub fn full_mesh(
        n: usize,
        latency_ms: (f64, f64),
        jitter_ms: f64,
        bandwidth_bps: u64,
        seed: u64,
    ) -> Topology {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let nodes: Vec<Node> = (0..n)
            .map(|i| Node {
                id: format!("n{i}"),
                up_bps: bandwidth_bps,
                down_bps: bandwidth_bps,
            })
            .collect();
        let mut edges = Vec::new();
        for i in 0..n {
            for j in i..n {
                let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                let latency = if i == j {
                    latency_ms.0 / 2.0
                } else {
                    latency_ms.0 + u * (latency_ms.1 - latency_ms.0)
                };
                edges.push(Edge {
                    a: nodes[i].id.clone(),
                    b: nodes[j].id.clone(),
                    latency_ms: latency,
                    jitter_ms,
                    fail_rate: 0.0,
                });
            }
        }
        Topology { nodes, edges }
    }

    /// `nodes_per_region` nodes in each region: nodes of one region are `intra_ms` apart,
    /// regions are joined by one inter-region edge of `inter_ms` between their first
    /// nodes (so a cross-region path is intra + inter + intra at most).
    pub fn regions(
        regions: &[String],
        nodes_per_region: usize,
        intra_ms: f64,
        inter_ms: f64,
        jitter_ms: f64,
        bandwidth_bps: u64,
    ) -> Topology {
        let mut t = Topology::default();
        let edge = |a: &str, b: &str, latency_ms: f64| Edge {
            a: a.into(),
            b: b.into(),
            latency_ms,
            jitter_ms,
            fail_rate: 0.0,
        };
        for r in regions {
            let ids: Vec<String> = (0..nodes_per_region.max(1))
                .map(|i| format!("{r}{i}"))
                .collect();
            for (i, id) in ids.iter().enumerate() {
                t.nodes.push(Node {
                    id: id.clone(),
                    up_bps: bandwidth_bps,
                    down_bps: bandwidth_bps,
                });
                for other in &ids[i..] {
                    t.edges.push(edge(id, other, intra_ms));
                }
            }
        }
        for (i, a) in regions.iter().enumerate() {
            for b in &regions[i + 1..] {
                t.edges
                    .push(edge(&format!("{a}0"), &format!("{b}0"), inter_ms));
            }
        }
        t
    }

    /// The lowest-latency path from node `from` to node `to` (Dijkstra), or `None` if
    /// they are not connected. Jitter and failure rates add up along the path.
    pub fn path(&self, from: usize, to: usize) -> Option<Path> {
        if from == to {
            let self_edge = self
                .edges
                .iter()
                .find(|e| e.a == e.b && self.node_index(&e.a) == Some(from));
            return Some(self_edge.map_or(Path::ZERO, |e| Path {
                latency: ms(e.latency_ms),
                jitter: ms(e.jitter_ms),
                fail_rate: e.fail_rate,
            }));
        }
        let index: BTreeMap<&str, usize> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.as_str(), i))
            .collect();
        let mut adj: Vec<Vec<(usize, &Edge)>> = vec![Vec::new(); self.nodes.len()];
        for e in &self.edges {
            let (Some(&a), Some(&b)) = (index.get(e.a.as_str()), index.get(e.b.as_str())) else {
                continue;
            };
            if a != b {
                adj[a].push((b, e));
                adj[b].push((a, e));
            }
        }
        // Plain O(n^2) Dijkstra: graphs are small and paths are cached by the world.
        let n = self.nodes.len();
        let mut best: Vec<Option<Path>> = vec![None; n];
        let mut done = vec![false; n];
        best[from] = Some(Path::ZERO);
        loop {
            let next = (0..n)
                .filter(|&i| !done[i])
                .filter_map(|i| best[i].map(|p| (p.latency, i)))
                .min();
            let (_, u) = next?;
            if u == to {
                return best[u];
            }
            done[u] = true;
            let pu = best[u]?;
            for &(v, e) in &adj[u] {
                let cand = Path {
                    latency: pu.latency + ms(e.latency_ms),
                    jitter: pu.jitter + ms(e.jitter_ms),
                    fail_rate: pu.fail_rate + e.fail_rate,
                };
                if best[v].is_none_or(|b| cand.latency < b.latency) {
                    best[v] = Some(cand);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_finds_shortest_path() {
        let t = Topology::from_toml(
            r#"
            [[node]]
            id = "a"
            up_bps = 1000
            down_bps = 2000
            [[node]]
            id = "b"
            [[node]]
            id = "c"
            [[edge]]
            a = "a"
            b = "c"
            latency_ms = 50.0
            [[edge]]
            a = "a"
            b = "b"
            latency_ms = 10.0
            jitter_ms = 1.0
            [[edge]]
            a = "b"
            b = "c"
            latency_ms = 15.0
            fail_rate = 0.5
            "#,
        )
        .unwrap();
        assert_eq!(t.nodes[0].down_bps, 2000);
        let p = t.path(0, 2).unwrap();
        assert_eq!(p.latency, Duration::from_millis(25));
        assert_eq!(p.jitter, Duration::from_millis(1));
        assert_eq!(p.fail_rate, 0.5);
        assert_eq!(t.path(1, 1).unwrap(), Path::ZERO);
    }

    #[test]
    fn rejects_unknown_nodes_and_reports_unreachable() {
        let bad = "[[node]]\nid = \"a\"\n[[edge]]\na = \"a\"\nb = \"z\"\nlatency_ms = 1.0\n";
        assert_eq!(
            Topology::from_toml(bad),
            Err(TopologyError::UnknownNode("z".into()))
        );
        let t = Topology::from_toml("[[node]]\nid = \"a\"\n[[node]]\nid = \"b\"\n").unwrap();
        assert_eq!(t.path(0, 1), None);
    }

    #[test]
    fn generators() {
        let m = Topology::full_mesh(4, (10.0, 20.0), 0.0, 0, 7);
        assert_eq!(m, Topology::full_mesh(4, (10.0, 20.0), 0.0, 0, 7));
        m.validate().unwrap();
        assert_eq!(m.edges.len(), 10);
        let l = m.path(0, 3).unwrap().latency;
        assert!(l >= Duration::from_millis(10) && l <= Duration::from_millis(20));

        let r = Topology::regions(&["eu".into(), "us".into()], 2, 5.0, 80.0, 0.0, 0);
        r.validate().unwrap();
        let eu1 = r.node_index("eu1").unwrap();
        let us1 = r.node_index("us1").unwrap();
        assert_eq!(r.path(eu1, us1).unwrap().latency, Duration::from_millis(90));
    }
}
