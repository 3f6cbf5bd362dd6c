"""The browser worker: one Chromium on the arena page, serving completion jobs from arq."""
