//! What a Service asks of the allocator, parsed from its spec and annotations (not written yet).
