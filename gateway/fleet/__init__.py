"""Who can serve a request: the catalog the live workers offer, their heartbeats, model aliases,
and a queued request's wait for an account."""
