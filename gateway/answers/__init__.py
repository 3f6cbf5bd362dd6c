"""The API-neutral core: a neutral request becomes a queued job (completions), its events come
back through a job handle and are folded into answers (fold). Conversations, transcripts,
battles, the catalog and fleet views, image inputs and citations live here too."""
