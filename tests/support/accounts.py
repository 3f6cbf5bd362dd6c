"""Browser profiles signed in to the fake arena, each as its own account, as a person signs a
worker in: through the arena's form, in a real Chromium that then writes its cookies away."""

from __future__ import annotations

import asyncio
from pathlib import Path

from selenium.webdriver.common.by import By

from shared.settings import Settings
from tests.support.procs import TEST_CHROMIUM_ARGS
from worker.arena.session import ArenaSession


async def sign_in(workdir: Path, arena: str, name: str, profile: Path) -> Path:
    """`profile`, signed in to the fake arena at `arena` as `name` (identity `user:<name>`)."""
    settings = Settings(
        arena_url=arena,
        state_dir=workdir / "state",
        headless=True,
        chromium_args=TEST_CHROMIUM_ARGS,
        profile_dir=profile,
    )
    session = await ArenaSession.start(settings, f"signer-{name}")
    try:
        driver = session.browser.driver
        await asyncio.to_thread(driver.get, f"{arena}/login")
        driver.find_element(By.NAME, "username").send_keys(name)
        driver.find_element(By.NAME, "password").send_keys("secret")
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        await asyncio.to_thread(driver.find_element, By.CSS_SELECTOR, "[data-testid=username]")
    finally:
        await session.close()  # Chromium writes the cookies to the profile as it closes
    return profile


def signed_in_profiles(workdir: Path, arena: str, *names: str) -> dict[str, Path]:
    """A profile per name under `workdir`, each signed in as that account (side by side)."""

    async def all_of_them() -> list[Path]:
        return await asyncio.gather(
            *(sign_in(workdir, arena, name, workdir / f"profile-{name}") for name in names)
        )

    return dict(zip(names, asyncio.run(all_of_them()), strict=True))
