"""The gateway: OpenAI's and Anthropic's APIs in front of the arena's models.

A request crosses its rooms in this order:
- `http`: the app, its middleware (body limit, metrics), error bodies, SSE frames, health;
- `access`: who is calling (client keys), the key's limits, its usage;
- `apis`: each API's routes, request schemas and rendering (`openai`, `anthropic`, `responses`);
- `answers`: the API-neutral core: a request becomes a job on the queue, its events come back
  through a job handle and are folded into answers every API renders;
- `admin`: the admin page and API, its sign-in, and the workers' screens.
"""
