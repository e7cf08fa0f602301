//! Fuzzes the ARP codec on arbitrary frames: parsing must never panic, classification must
//! never report a request for an IP we do not own, and what parses must re-encode to a frame
//! that parses to the same thing.
#![no_main]

use std::net::Ipv4Addr;

use ferrolb_core::arp::{classify, parse_frame, FrameBuf, MacAddr, Observation, FRAME_LEN};
use libfuzzer_sys::fuzz_target;

const OUR_MAC: MacAddr = MacAddr([0x02, 0xfe, 0, 0, 0, 0x10]);
const OUR_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = parse_frame(data) else { return };
    match classify(&frame, OUR_MAC, |ip| ip == OUR_IP) {
        Observation::Request { ip, .. } | Observation::Claim { ip, .. } => assert_eq!(ip, OUR_IP),
        Observation::Unrelated => {}
    }
    let mut buf: FrameBuf = [0; FRAME_LEN];
    let bytes = frame.write(&mut buf).to_vec();
    let again = parse_frame(&bytes).expect("an encoded frame parses");
    assert_eq!(again, frame);
});
