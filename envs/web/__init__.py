"""Web environments: Chromium through Playwright (`browser`, `page`) and a WebShop-style store."""
