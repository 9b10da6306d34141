//! Events per wall-clock second: 1,000 test hosts pinging each other.
//!
//! Each host dials two others and sends a 64-byte ping every 100 ms of virtual time over
//! a 20-node full mesh; one iteration runs 2 s of virtual time. The reported throughput is
//! in trace events (each one host input or output).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use common::TestHost;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use onionpeer_sim::topology::Topology;
use onionpeer_sim::{Action, Instant, SimConfig, Trace, World};

const HOSTS: usize = 1000;

fn run_once() -> u64 {
    let topology = Topology::full_mesh(20, (5.0, 60.0), 1.0, 0, 1);
    let mut world = World::new(
        1u64,
        SimConfig::default(),
        topology,
        Trace::new(),
        |_spec| TestHost::new("echo").repeating(Duration::from_millis(100)),
    );
    world.on_action(TestHost::hook);
    for i in 0..HOSTS {
        world.add_host(&format!("h{i}"), "echo", None);
    }
    for i in 0..HOSTS {
        for step in [1, 7] {
            let dial = Action::new("dial")
                .with("host", format!("h{i}"))
                .with("to", format!("h{}", (i + step) % HOSTS))
                .with("bytes", 64)
                .with("rounds", i64::MAX);
            world.schedule(Instant::ZERO, dial);
        }
    }
    world.run_until(Instant::from_millis(2000));
    world.trace().count()
}

fn events(c: &mut Criterion) {
    let events = run_once();
    let mut group = c.benchmark_group("sim");
    group.sample_size(10);
    group.throughput(Throughput::Elements(events));
    group.bench_function("1000_hosts_ping_2s", |b| b.iter(run_once));
    group.finish();
}

criterion_group!(benches, events);
criterion_main!(benches);
