"""Redis: every connection (redis_client), the key names (redis_keys), the arq glue (job_queue),
riding out an outage (outage), the Lua the scripts share (lua)."""
