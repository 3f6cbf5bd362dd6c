"""The HTTP edge: the app factory and server, error bodies, the body limit, disconnects, SSE
frames, health and metrics."""
