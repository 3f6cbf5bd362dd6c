"""The LMArena wire protocol as pure functions: ids, request payloads, the stream parser,
the model catalog, error classification and facts read off the page. No IO here."""
