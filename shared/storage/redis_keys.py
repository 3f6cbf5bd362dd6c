"""Redis key names, in one place so that every process agrees on them."""

from __future__ import annotations

PREFIX = "lmb"

#: arq queue every ready worker takes from.
SHARED_QUEUE = f"{PREFIX}:queue"
#: Set of worker ids that have ever heartbeated; entries whose heartbeat key is gone are dead.
WORKERS = f"{PREFIX}:workers"


def worker_queue(worker_id: str) -> str:
    """arq queue owned by one worker (continuations of conversations it holds)."""
    return f"{PREFIX}:queue:{worker_id}"


def wake_list(queue: str) -> str:
    """List of wake-up tokens for `queue`: one is pushed with every job queued on it (and every
    abort meant for its workers), and one listening worker pops each."""
    return f"{queue}:wake"


def worker_heartbeat(worker_id: str) -> str:
    """JSON heartbeat of one worker; expires when the worker stops beating."""
    return f"{PREFIX}:worker:{worker_id}"


def worker_jobs(worker_id: str) -> str:
    """Hash of the jobs one worker has claimed and not finished: arq job id → the queue it came
    from. If the worker dies, the fleet finds its jobs here (see shared.fleet.recovery)."""
    return f"{PREFIX}:worker:{worker_id}:jobs"


#: Held by the one process that watches the roster for dead workers (see shared.fleet.recovery).
RECOVERY_WATCHER = f"{PREFIX}:recovery:watcher"


def recovery_lock(worker_id: str) -> str:
    """Held while one process saves the jobs of a dead worker (see shared.fleet.recovery)."""
    return f"{PREFIX}:worker:{worker_id}:recovery"


def worker_chats(worker_id: str) -> str:
    """Sorted set of the arena sessions one worker's account opened, by when the bridge may
    have forgotten them (Unix time): deleted in the arena then, unless still remembered."""
    return f"{PREFIX}:worker:{worker_id}:chats"


def worker_cookies(worker_id: str) -> str:
    """List of cookie imports waiting for one worker, each sealed with the admin key (see
    shared.fleet.cookie_handover); the worker takes them while running, or at its next start."""
    return f"{PREFIX}:worker:{worker_id}:cookies"


def cookie_import(import_id: str) -> str:
    """List the worker pushes what became of one cookie import to (see shared.fleet.cookie_handover)."""
    return f"{PREFIX}:cookies:{import_id}"


def catalog(digest: str) -> str:
    """A model catalog as a worker read it off the arena (JSON), by the digest of its entries.

    Workers that see the same catalog share one key; each names its own in its heartbeat.
    """
    return f"{PREFIX}:catalog:{digest}"


def catalog_ids(digest: str) -> str:
    """Set of the arena model ids of a catalog (every modality's): a worker claims only the
    jobs whose models its catalog's set holds (see shared.storage.job_queue.TAKES_LUA)."""
    return f"{PREFIX}:catalog:{digest}:ids"


def admin_revoked(session_id: str) -> str:
    """Set when an admin page session signs out, until the session would have expired."""
    return f"{PREFIX}:admin:revoked:{session_id}"


def job_events(job_id: str) -> str:
    """Redis Stream of a job's normalized events (see shared.events)."""
    return f"{PREFIX}:job:{job_id}:events"


def job_cancel(job_id: str) -> str:
    """Set when the client went away; the worker stops the stream."""
    return f"{PREFIX}:job:{job_id}:cancel"


def job_models(job_id: str) -> str:
    """The arena model ids a job asks for, space-separated, beside the job in its queue: only an
    account whose catalog has them all takes it."""
    return f"{PREFIX}:job:{job_id}:models"


def job_request(job_id: str) -> str:
    """Hash of what a job was asked with, kept as long as its events (see
    gateway.answers.resume): the job, the key, the route, a streamed request's body."""
    return f"{PREFIX}:job:{job_id}:request"


def idempotency(key_id: str, digest: str) -> str:
    """The job that answers a client key's requests with one `Idempotency-Key` (its digest)."""
    return f"{PREFIX}:idem:{{{key_id}}}:{digest}"


def image(digest: str) -> str:
    """Hash of an image a client sent (`m`: media type, `d`: bytes), by the digest of its source."""
    return f"{PREFIX}:image:{digest}"


def conversation(fingerprint: str) -> str:
    """JSON of the arena thread that answered a conversation (see gateway.conversations.continuation)."""
    return f"{PREFIX}:conv:{fingerprint}"


def conversation_head(session_id: str) -> str:
    """Where an arena session's thread stands now: the only state a turn may continue from."""
    return f"{PREFIX}:conv:session:{session_id}"


def stored_response(client: str | None, response_id: str) -> str:
    """The conversation a Responses answer ended (JSON turns), for `previous_response_id`;
    per client key (`-` when keys are off)."""
    return f"{PREFIX}:response:{client or '-'}:{response_id}"


def arq_job_id(job_id: str, attempt: int) -> str:
    """arq's id for one attempt at a job (a job moved to another worker is a new attempt)."""
    return f"{job_id}:{attempt}"


def job_of(arq_id: str) -> str:
    """The job an arq id (`arq_job_id`) is an attempt at."""
    return arq_id.rpartition(":")[0] or arq_id


#: Client API keys: a hash of key id → the key's SHA-256 (the index listings read).
API_KEYS = f"{PREFIX}:apikeys"
#: Counters workers add to and gateways export on /metrics (a hash: field → count).
COUNTERS = f"{PREFIX}:counters"


def api_key(key_hash: str) -> str:
    """One client key's record (JSON), found by the SHA-256 of the key the client sends."""
    return f"{PREFIX}:apikey:{key_hash}"


def key_limit(key_id: str, name: str) -> str:
    """A limit's state for one key; the braces keep all of a key's limits in one cluster slot."""
    return f"{PREFIX}:limit:{{{key_id}}}:{name}"


def usage(day: str) -> str:
    """One UTC day's usage (`YYYY-MM-DD`): a hash of `key|model|metric` → count."""
    return f"{PREFIX}:usage:{day}"


def account_calls(account: str) -> str:
    """When an arena account made its stream calls (a sorted set by time): its pacing record."""
    return f"{PREFIX}:account:{{{account}}}:calls"


def auth_failures(client: str | None) -> str:
    """Failed keys and sign-ins of one client address in the last minute; None: everyone's."""
    return f"{PREFIX}:authfail:{client if client is not None else '*'}"


def images_held(owner: str, *, sizes: bool = False) -> str:
    """The images one client key keeps for its conversations: digest → held until (a sorted
    set); with `sizes`, digest → bytes and the total (a hash)."""
    return f"{PREFIX}:images:{{{owner}}}:{'sizes' if sizes else 'held'}"


def stream_reader_wake(reader: str) -> str:
    """A gateway's stream reader's own stream: an entry wakes its blocked XREAD (new streams)."""
    return f"{PREFIX}:reader:{reader}:wake"
