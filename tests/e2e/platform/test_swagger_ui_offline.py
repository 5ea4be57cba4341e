"""/docs in a real browser on a machine without internet: headless Chromium, every host but the
loopback unresolvable, must draw the operations from the service's own Swagger UI assets."""

import subprocess

import pytest

pytestmark = pytest.mark.e2e

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # No internet: any name but the loopback fails to resolve, as a CDN would on such a machine.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
]


def test_docs_page_shows_the_operations_with_no_internet(seeded_server, tmp_path):
    dom = subprocess.run(
        [
            "chromium",
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            # Virtual time runs the page's scripts and waits for its fetches (the OpenAPI document).
            "--virtual-time-budget=30000",
            "--dump-dom",
            f"{seeded_server.server.url}/docs",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    page = dom.stdout
    assert 'class="swagger-ui' in page, page[-2000:]
    # One drawn block per operation, each naming its path: the document was fetched and rendered.
    assert page.count('class="opblock opblock-') >= 30, page[-2000:]
    for path in ("/api/v1/purchases", "/api/v1/offers/active", "/api/v1/auth/login"):
        assert f'data-path="{path}"' in page, path
