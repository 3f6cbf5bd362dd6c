"""The browser: Chromium started through undetected-chromedriver, the DevTools client, the arena
page with the worker's script in it, and the display a person watches through noVNC."""
