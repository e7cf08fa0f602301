//! The admin HTTP path: fault injection and the request log from outside the test process
//! (a shell script, `curl`), not only through the library handle.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use kube_sim::KubeSim;

/// One HTTP/1.1 request; returns (status, body).
fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: sim\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_path_injects_faults_and_serves_the_request_log() {
    let sim = KubeSim::start().await.expect("start");
    let addr = sim.addr();
    tokio::task::spawn_blocking(move || {
        let svc = "/api/v1/namespaces/default/services";
        assert_eq!(http(addr, "GET", svc).0, 200);

        assert_eq!(
            http(
                addr,
                "POST",
                "/admin/fail?count=2&status=503&verb=list&resource=services"
            )
            .0,
            200
        );
        assert_eq!(
            http(addr, "GET", "/api/v1/namespaces/default/configmaps").0,
            200,
            "other resources unaffected"
        );
        let (code, body) = http(addr, "GET", svc);
        assert_eq!(code, 503);
        assert!(body.contains("\"reason\":\"ServiceUnavailable\""), "{body}");
        assert_eq!(http(addr, "GET", svc).0, 503);
        assert_eq!(http(addr, "GET", svc).0, 200, "only the next two fail");

        assert_eq!(http(addr, "POST", "/admin/latency?ms=300").0, 200);
        let start = Instant::now();
        assert_eq!(http(addr, "GET", svc).0, 200);
        assert!(
            start.elapsed() >= Duration::from_millis(300),
            "latency applied"
        );
        assert_eq!(http(addr, "POST", "/admin/clear").0, 200);

        let (code, log) = http(addr, "GET", "/admin/requests");
        assert_eq!(code, 200);
        let log: serde_json::Value = serde_json::from_str(&log).expect("JSON log");
        let statuses: Vec<u64> = log
            .as_array()
            .expect("array")
            .iter()
            .filter(|r| r["resource"] == "services" && r["verb"] == "list")
            .filter_map(|r| r["status"].as_u64())
            .collect();
        assert_eq!(
            statuses,
            [200, 503, 503, 200, 200],
            "admin calls are not logged; resource calls are"
        );

        assert_eq!(http(addr, "POST", "/admin/nonsense").0, 404);
        assert_eq!(
            http(addr, "POST", "/admin/fail?count=1").0,
            400,
            "status is required"
        );
    })
    .await
    .expect("blocking part");
}
