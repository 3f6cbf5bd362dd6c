"""The browser worker: one Chromium holding one arena account, serving jobs off the queue.

- `main`: the worker's life: start, serve, wait for a person, restart, stop;
- `state`: its state machine; `heartbeat`: its status in Redis; `queue_worker`: arq workers
  that claim jobs the moment they are queued;
- `browser`: Chromium, the DevTools client, the page and its script, the display;
- `arena`: the arena as the page sees it: the session, one completion run, uploads, the
  reCAPTCHA token pool, the published catalog.
"""
