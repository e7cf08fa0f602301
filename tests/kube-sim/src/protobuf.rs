//! Decoding of protobuf request bodies sent by kubectl (not written yet).
