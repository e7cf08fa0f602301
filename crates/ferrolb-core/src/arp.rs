//! ARP packet codec (not written yet).
