//! kube-sim: a Kubernetes API server emulator over real HTTP (being written).

pub mod patch;
pub mod protobuf;
