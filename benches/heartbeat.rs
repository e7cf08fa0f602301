//! Cost of heartbeats for one speaker on a subnet of 200 speakers (issue 12: under 2 % of a core
//! and under 100 kbit/s). The traffic is what a real 200-node ring sends: the speaker under test
//! receives the heartbeats of the peers it watches and sends its own to its watchers, both
//! taken from the same pure watcher assignment every speaker computes
//! (`ferrolb_core::heartbeat::assign`). One iteration is one second of that traffic: every
//! datagram authenticated, replay-checked and fed to the failure detector, plus our own sends
//! encoded. `udp_loopback` adds the real socket path (send + recv syscalls over 127.0.0.1).
//! `assign_200` is the cost of recomputing the rings after a Lease change. CPU share = time
//! per iteration / 1 s.

use std::hint::black_box;
use std::net::UdpSocket;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use ferrolb_core::election::MonoTime;
use ferrolb_core::heartbeat::{
    assign, decode_message, encode, FailureDetector, Heartbeat, HeartbeatKey, Member, ReplayGuard,
    DEFAULT_INTERVAL, DEFAULT_MISSES, WATCHERS,
};

const PEERS: usize = 200;
const PER_SECOND: u64 = 5;
const ME: &str = "worker-node-000.example.internal";

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

/// The 200 speakers of one subnet (IPv4 /24, as on the namespace LAN).
fn ring() -> Vec<Member> {
    (0..PEERS)
        .map(|p| Member {
            node: format!("worker-node-{p:03}.example.internal"),
            addrs: vec![format!("198.51.100.{}/24", p + 1).parse().expect("literal")],
        })
        .collect()
}

/// One second of the heartbeats the peers we watch send us, in arrival order.
fn one_second(key: &HeartbeatKey, senders: &[String]) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    for tick in 0..PER_SECOND {
        for name in senders {
            let hb = heartbeat(name, tick + 1);
            out.push((tick * 200, encode(&hb, key).expect("valid heartbeat")));
        }
    }
    out
}

fn process(key: &HeartbeatKey, datagrams: &[(u64, Vec<u8>)], watchers: usize) -> usize {
    let mut guard = ReplayGuard::new();
    let mut detector = FailureDetector::default();
    let mut accepted = 0;
    for (ms, bytes) in datagrams {
        if let Ok(m) = decode_message(bytes, key) {
            if guard.check(&m.from).is_ok() {
                detector.heard(
                    &m.from.node,
                    m.from.interval,
                    m.from.misses,
                    MonoTime::from_millis(*ms),
                );
                accepted += 1;
            }
        }
    }
    // Our own heartbeats: one encoding per interval, sent to each watcher.
    for tick in 0..PER_SECOND {
        let bytes = encode(&heartbeat(ME, tick), key).ok();
        for _ in 0..watchers {
            black_box(&bytes);
        }
    }
    black_box(detector.suspected(MonoTime::from_millis(1000)).count());
    accepted
}

fn bench(c: &mut Criterion) {
    let key = key();
    let members = ring();
    let assignment = assign(&members, WATCHERS);
    let senders: Vec<String> = assignment.watched_by(ME).into_iter().collect();
    let watchers = assignment.watchers_of(ME).len();
    let datagrams = one_second(&key, &senders);
    let size = datagrams[0].1.len();
    // Ethernet (14) + IPv4 (20) + UDP (8) headers; the 4-byte FCS and preamble are left out.
    let wire = size + 14 + 20 + 8;
    let sent_bits = wire as u64 * PER_SECOND * watchers as u64 * 8;
    let received_bits = wire as u64 * datagrams.len() as u64 * 8;
    eprintln!(
        "heartbeat: {size}-byte datagrams ({wire} on the wire); {PEERS} speakers on the subnet, \
         k = {WATCHERS}: this speaker watches {} and is watched by {watchers}; received {} \
         datagrams/s = {:.1} kbit/s, sent {} datagrams/s = {:.1} kbit/s \
         (all-to-all multicast before: received {} datagrams/s = {:.1} kbit/s)",
        senders.len(),
        datagrams.len(),
        received_bits as f64 / 1000.0,
        PER_SECOND * watchers as u64,
        sent_bits as f64 / 1000.0,
        PER_SECOND * (PEERS as u64 - 1),
        (wire as u64 * PER_SECOND * (PEERS as u64 - 1) * 8) as f64 / 1000.0,
    );
    assert!(
        received_bits < 100_000 && sent_bits < 100_000,
        "over the 100 kbit/s budget"
    );
    assert_eq!(process(&key, &datagrams, watchers), datagrams.len());

    let mut group = c.benchmark_group("heartbeat");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("one_second_in_a_ring_of_200", |b| {
        b.iter(|| black_box(process(&key, &datagrams, watchers)))
    });
    group.bench_function("assign_200", |b| {
        b.iter(|| black_box(assign(&members, WATCHERS)))
    });

    let rx = UdpSocket::bind("127.0.0.1:0").expect("bind receiver");
    let tx = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
    rx.set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    let dest = rx.local_addr().expect("address");
    // Each datagram is sent and then received, so the figure also carries the sender's
    // syscall: an overestimate of the receiving speaker's cost.
    group.bench_function("one_second_in_a_ring_of_200_udp_loopback", |b| {
        b.iter(|| {
            let mut buf = [0u8; 1024];
            let mut received = Vec::with_capacity(datagrams.len());
            for (ms, d) in &datagrams {
                tx.send_to(d, dest).expect("send");
                let n = rx.recv(&mut buf).expect("recv");
                received.push((*ms, buf[..n].to_vec()));
            }
            black_box(process(&key, &received, watchers))
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
