"""What the gateway and the worker both import: settings, logs, wire schemas (jobs, events,
threads); Redis (`shared.storage`), the fleet as every process sees it (`shared.fleet`), secrets
and their checks (`shared.credentials`), and the arena protocol as pure functions
(`shared.arena`)."""
