"""The VPS-side `clicknback-ops` CLI: operations that cron and the laptop tasks both run."""
