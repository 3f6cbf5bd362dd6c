"""What the gateway and the worker both import: settings, wire schemas (jobs, events, worker
status, threads), Redis key names, the arq glue, and the arena protocol as pure functions
(`shared.arena`)."""
