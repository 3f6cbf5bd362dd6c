"""The gateway: OpenAI-compatible HTTP API in front of the job queue and the workers' answers."""
