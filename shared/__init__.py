"""What the gateway and the worker both import: settings, wire schemas, Redis keys, the arena protocol."""
