"""The arena as the worker uses it through the page: the session, one completion run, image
uploads, the reCAPTCHA token pool and the catalog it publishes."""
