"""The API-neutral core: a neutral request becomes a queued job (completions), its events come
back through a job handle and are folded into answers (fold) that every API renders. Tool calls
(tools/), battles, shaping and JSON mode, citations and reading an answer again live here too;
what a request sends is in `gateway.conversations`, who can serve it in `gateway.fleet`."""
