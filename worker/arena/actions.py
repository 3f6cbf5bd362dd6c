"""The site's server actions (Next.js), run from the page by name.

Action ids change with every deploy of the site: they are read off the page's own scripts
(`shared.arena.page.server_action_ids`) the first time one is needed on a page, and read again
when the site no longer knows the id it was given.
"""

from __future__ import annotations

from typing import Any

from shared.arena.page import action_result, server_action_ids
from shared.arena.site import SERVER_REFERENCE_SCRIPT, UNKNOWN_ACTION_STATUS
from worker.browser.page import ArenaPage, PageError


class ActionFailed(Exception):
    """A server action could not be run, or answered something unreadable."""


class ServerActions:
    """Runs actions by name in one page after another; remembers the ids of the current one."""

    def __init__(self) -> None:
        self._page: ArenaPage | None = None
        self._ids: dict[str, str] = {}

    async def ids(self, page: ArenaPage, *, fresh: bool = False) -> dict[str, str]:
        """Action ids by name, as the page's scripts declare them."""
        if fresh or page is not self._page:
            self._ids = server_action_ids("\n".join(await page.scripts(SERVER_REFERENCE_SCRIPT)))
            self._page = page
        return self._ids

    async def run(self, page: ArenaPage, name: str, args: list[Any]) -> Any:
        """What the action `name` returned (line 1 of its answer)."""
        try:
            for fresh in (False, True):
                action_id = (await self.ids(page, fresh=fresh)).get(name)
                if action_id is None:
                    continue
                status, body = await page.action(action_id, args)
                if status == UNKNOWN_ACTION_STATUS:
                    continue  # the site was deployed again since the ids were read
                if status != 200:
                    raise ActionFailed(f"{name} answered HTTP {status}")
                try:
                    return action_result(body)
                except ValueError as exc:
                    raise ActionFailed(f"{name}: {exc}") from None
        except PageError as exc:  # a request the page could not make (network, CORS)
            raise ActionFailed(f"{name}: {exc}") from None
        raise ActionFailed(f"the arena page has no {name} action")
