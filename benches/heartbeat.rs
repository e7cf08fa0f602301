//! Cost of heartbeats for one speaker with 200 peers on its subnet (issue 12: under 2 % of a
//! core and under 100 kbit/s). One iteration is one second of heartbeat traffic: every peer's
//! 5 datagrams (one per 200 ms) authenticated, replay-checked and fed to the failure detector,
//! plus our own 5 sends. `udp_loopback` adds the real socket path (send + recv syscalls over
//! 127.0.0.1). CPU share = time per iteration / 1 s.

use std::hint::black_box;
use std::net::UdpSocket;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use ferrolb_core::election::MonoTime;
use ferrolb_core::heartbeat::{
    decode, encode, FailureDetector, Heartbeat, HeartbeatKey, ReplayGuard, DEFAULT_INTERVAL,
    DEFAULT_MISSES,
};

const PEERS: usize = 200;
const PER_SECOND: u64 = 5;

fn key() -> HeartbeatKey {
    HeartbeatKey::new(b"bench-heartbeat-key-0123456789ab").expect("32-byte key")
}

fn heartbeat(node: &str, counter: u64) -> Heartbeat {
    Heartbeat {
        node: node.to_string(),
        epoch: 1_764_000_000_000_000_000,
        counter,
        interval: DEFAULT_INTERVAL,
        misses: DEFAULT_MISSES,
    }
}

/// One second of datagrams from the 199 other peers, in arrival order.
fn one_second(key: &HeartbeatKey) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    for tick in 0..PER_SECOND {
        for p in 1..PEERS {
            let name = format!("worker-node-{p:03}.example.internal");
            let hb = heartbeat(&name, tick + 1);
            out.push((tick * 200, encode(&hb, key).expect("valid heartbeat")));
        }
    }
    out
}

fn process(key: &HeartbeatKey, datagrams: &[(u64, Vec<u8>)]) -> usize {
    let mut guard = ReplayGuard::new();
    let mut detector = FailureDetector::default();
    let mut accepted = 0;
    for (ms, bytes) in datagrams {
        if let Ok(hb) = decode(bytes, key) {
            if guard.check(&hb).is_ok() {
                detector.heard(&hb.node, hb.interval, hb.misses, MonoTime::from_millis(*ms));
                accepted += 1;
            }
        }
    }
    for tick in 0..PER_SECOND {
        black_box(encode(&heartbeat("worker-node-000.example.internal", tick), key).ok());
    }
    black_box(detector.suspected(MonoTime::from_millis(1000)).count());
    accepted
}

fn bench(c: &mut Criterion) {
    let key = key();
    let datagrams = one_second(&key);
    let size = datagrams[0].1.len();
    // Ethernet (14) + IPv4 (20) + UDP (8) headers; the 4-byte FCS and preamble are left out.
    let wire = size + 14 + 20 + 8;
    let sent_bits = wire as u64 * PER_SECOND * 8;
    let received_bits = wire as u64 * PER_SECOND * (PEERS as u64 - 1) * 8;
    eprintln!(
        "heartbeat: {size}-byte datagrams ({wire} on the wire); {PEERS} peers: sent {:.1} kbit/s \
         per interface, received {:.1} kbit/s",
        sent_bits as f64 / 1000.0,
        received_bits as f64 / 1000.0
    );
    assert_eq!(process(&key, &datagrams), datagrams.len());

    let mut group = c.benchmark_group("heartbeat");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("one_second_of_200_peers", |b| {
        b.iter(|| black_box(process(&key, &datagrams)))
    });

    let rx = UdpSocket::bind("127.0.0.1:0").expect("bind receiver");
    let tx = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
    rx.set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    let dest = rx.local_addr().expect("address");
    // Each datagram is sent and then received, so the figure also carries the sender's
    // syscall: an overestimate of the receiving speaker's cost.
    group.bench_function("one_second_of_200_peers_udp_loopback", |b| {
        b.iter(|| {
            let mut buf = [0u8; 1024];
            let mut received = Vec::with_capacity(datagrams.len());
            for (ms, d) in &datagrams {
                tx.send_to(d, dest).expect("send");
                let n = rx.recv(&mut buf).expect("recv");
                received.push((*ms, buf[..n].to_vec()));
            }
            black_box(process(&key, &received))
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
