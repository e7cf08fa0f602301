//! Fuzzes the NDP codec on arbitrary frames: parsing must never panic, classification must
//! never report anything about an IP we do not own, a solicitation must never be reported
//! from `::` or answered from our own MAC, and what parses must re-encode to a frame that
//! parses to the same thing.
#![no_main]

use std::net::Ipv6Addr;

use ferrolb_core::arp::MacAddr;
use ferrolb_core::ndp::{
    build_advertisement_reply, classify, parse_frame, NdpBuf, Observation, NDP_FRAME_LEN,
};
use libfuzzer_sys::fuzz_target;

const OUR_MAC: MacAddr = MacAddr([0x02, 0xfe, 0, 0, 0, 0x10]);
const OUR_IP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = parse_frame(data) else { return };
    match classify(&frame, OUR_MAC, |ip| ip == OUR_IP) {
        Observation::Solicitation {
            ip,
            from_mac,
            from_ip,
        } => {
            assert_eq!(ip, OUR_IP);
            assert!(!from_ip.is_unspecified());
            assert_ne!(frame.eth_src, OUR_MAC);
            // The answer to whatever asked is itself a valid advertisement.
            let mut buf: NdpBuf = [0; NDP_FRAME_LEN];
            let reply = build_advertisement_reply(&mut buf, OUR_MAC, ip, from_mac, from_ip);
            let parsed = parse_frame(reply).expect("our reply parses");
            assert_eq!(parsed.target, OUR_IP);
        }
        Observation::DadProbe { ip, .. } | Observation::Claim { ip, .. } => {
            assert_eq!(ip, OUR_IP)
        }
        Observation::Unrelated => {}
    }
    let mut out = vec![0u8; frame.encoded_len()];
    let bytes = frame.write(&mut out).expect("fits its own length").to_vec();
    let again = parse_frame(&bytes).expect("an encoded frame parses");
    assert_eq!(again, frame);
});
