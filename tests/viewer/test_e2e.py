"""The viewer's page in a real Chromium (Playwright) over a real tiny training run and a damaged store: the
charts, the episodes table and its filters, an episode's trained tokens against the store's loss mask, a
rollout tree, the error banner, and links that reopen the same view."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentenv.serving import ServerThread
from agentenv.store import TrajectoryStore

pytestmark = pytest.mark.integration

TIMEOUT_MS = 10_000
METRICS = ("success_rate", "reward_mean", "loss", "kl", "entropy", "update_tokens_per_s", "policy_version")


@pytest.fixture(scope="module")
def server(viewer_run: Path, viewer_corrupt_store: Path) -> Iterator[ServerThread]:
    from agentenv.viewer import create_viewer_app

    with ServerThread(create_viewer_app([viewer_run.parent, viewer_corrupt_store])) as running:
        yield running


@pytest.fixture(scope="module")
def sources(server: ServerThread) -> dict[str, Any]:
    return httpx.get(f"{server.url}/api/sources").json()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    from agentenv.envs.web.browser import find_chromium

    try:
        executable = find_chromium()
    except Exception as exc:
        pytest.fail(f"Chromium is required for the viewer's page tests (scripts/setup.sh installs it): {exc}")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, server: ServerThread) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    failures: list[str] = []
    page.on("pageerror", lambda exc: failures.append(str(exc)))
    # the page must work offline: any request that leaves the viewer's server is a failure
    page.route(re.compile(r"^(?!" + re.escape(server.url) + r").*"), lambda route: (
        failures.append(f"external request: {route.request.url}"), route.abort()))
    yield page
    context.close()
    assert not failures, failures


def _open(page: Any, server: ServerThread, hash_: str) -> None:
    page.goto(f"{server.url}/#{hash_}")
    _settle(page)


def _settle(page: Any) -> None:
    """Wait until the view shows the URL's current selection (the page marks the hash it rendered)."""
    page.wait_for_function("(() => { const v = document.getElementById('view');"
                           " return v.dataset.state !== 'loading' && v.dataset.hash === location.hash; })()")


def _row_ids(page: Any) -> list[str]:
    return page.locator("[data-testid=episode-row]").evaluate_all("rows => rows.map(r => r.dataset.trajectory)")


def _store(sources: dict[str, Any], split: str) -> str:
    run = next(r for r in sources["runs"] if r["name"] == "demo-run")
    return next(s["id"] for s in sources["stores"] if s["run"] == run["id"] and s["split"] == split)


def _run(sources: dict[str, Any], name: str) -> str:
    return next(r["id"] for r in sources["runs"] if r["name"] == name)


def test_runs_view_draws_a_chart_per_metric_and_overlays_two_runs(page: Any, server: ServerThread,
                                                                  sources: dict[str, Any]):
    _open(page, server, "/")
    page.click(f"[data-testid=run-link][data-run={_run(sources, 'demo-run')}]")
    _settle(page)
    shown = page.eval_on_selector_all("[data-testid=metric-chart]", "els => els.map(e => e.dataset.metric)")
    assert set(METRICS) <= set(shown)
    loss = page.locator("[data-testid=metric-chart][data-metric=loss]")
    assert loss.locator("path.series").count() == 1

    page.check(f"[data-testid=run-compare][data-run={_run(sources, 'baseline')}]")
    _settle(page)
    assert loss.locator("path.series").count() == 2
    assert loss.locator(".legend-item").all_inner_texts() == ["demo-run", "baseline"]
    box = loss.locator("svg").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.5)
    tooltip = loss.locator("[data-testid=chart-tooltip]")
    assert tooltip.is_visible() and re.search(r"step \d+", tooltip.inner_text())

    page.click("[data-testid=layout-side]")
    _settle(page)
    assert page.locator(".run-column").count() == 2
    assert "layout=side" in page.evaluate("location.hash")


def test_filters_change_the_rows_to_match_the_api_total(page: Any, server: ServerThread, sources: dict[str, Any]):
    store = _store(sources, "train")
    _open(page, server, f"/store/{store}")
    api = f"{server.url}/api/stores/{store}/episodes"
    total = httpx.get(api, params={"limit": 1000}).json()["total"]
    assert page.get_attribute("[data-testid=episode-total]", "data-total") == str(total)
    assert page.locator("[data-testid=episode-row]").count() == min(total, 50)

    page.select_option("[data-testid=filter-status]", "failed")
    failed = httpx.get(api, params={"status": "failed"}).json()["total"]
    assert 0 < failed < total
    _settle(page)
    assert page.get_attribute("[data-testid=episode-total]", "data-total") == str(failed)
    assert page.locator("[data-testid=episode-row]").count() == failed

    page.select_option("[data-testid=filter-status]", "")
    page.select_option("[data-testid=filter-success]", "true")
    successes = httpx.get(api, params={"success": "true"}).json()["total"]
    _settle(page)
    assert page.get_attribute("[data-testid=episode-total]", "data-total") == str(successes)
    assert page.locator("[data-testid=episode-row]").count() == successes
    assert "success=true" in page.evaluate("location.hash")

    _open(page, server, f"/store/{store}?limit=5")
    assert page.locator("[data-testid=episode-row]").count() == 5
    page.click("[data-testid=page-next]")
    _settle(page)
    assert page.inner_text("[data-testid=episode-total]").startswith(f"6–10 of {total}")

    page.click("[data-testid=sort-reward]")
    _settle(page)
    assert "sort=reward" in page.evaluate("location.hash")
    rewards = [float(t) for t in page.locator("[data-testid=episode-row] td[data-col=reward]").all_inner_texts()]
    assert rewards == sorted(rewards)


def test_an_episode_highlights_exactly_the_tokens_the_loss_mask_trains(page: Any, server: ServerThread,
                                                                      sources: dict[str, Any], viewer_run: Path):
    store = _store(sources, "train")
    episodes = {t.trajectory_id: t for t in TrajectoryStore(viewer_run / "rollouts" / "step-00000").episodes()}
    # the fixture's first flat episode carries an image, a teacher's action and an imagined turn
    first = next(t for t in episodes.values() if any(turn.teacher_action for turn in t.turns))
    _open(page, server, f"/store/{store}")
    page.click(f"[data-testid=episode-row][data-trajectory='{first.trajectory_id}'] td[data-col=env_id]")
    _settle(page)

    mask_count = sum(sum(turn.completion_mask) for turn in first.turns)
    assert mask_count > 0
    assert page.locator("[data-testid=token].trained").count() == mask_count
    assert page.inner_text("[data-testid=trained-count]") == str(mask_count)
    completion = sum(len(turn.completion_ids) for turn in first.turns)
    assert page.locator("[data-testid=token]").count() == completion
    assert page.locator("[data-testid=turn]").count() == len(first.turns)

    assert page.locator("[data-testid=imagined-badge]").count() == sum(t.is_imagined for t in first.turns)
    assert page.inner_text("[data-testid=teacher-action]") == "the teacher's reply"
    assert page.locator("img[src^='data:image/png']").count() == 1  # inline in its message, shown once
    page.locator("[data-testid=turn]").first.locator("details.prompt-tokens summary").click()
    prompt = len(first.turns[0].prompt_ids)
    page.locator("[data-testid=prompt-token]").nth(prompt - 1).wait_for()  # drawn when opened
    assert page.locator("[data-testid=prompt-token]").count() == prompt
    colored = page.eval_on_selector_all("[data-testid=token]", "els => els.filter(e => e.style.background).length")
    assert colored > 0  # the log-prob heat map is on by default
    page.select_option("[data-testid=heat-select]", "entropy")
    _settle(page)
    assert "heat=entropy" in page.evaluate("location.hash")
    assert "uncertain" in page.inner_text("[data-testid=heat-legend]")
    export = page.get_attribute("[data-testid=export-link]", "href")
    assert httpx.get(f"{server.url}/{export}").status_code == 200


def test_a_tree_group_shows_one_node_per_member(page: Any, server: ServerThread, sources: dict[str, Any],
                                                  viewer_run: Path):
    store = _store(sources, "train")
    tree = [t for t in TrajectoryStore(viewer_run / "rollouts" / "step-00000").episodes() if t.group_id == "t000004"]
    _open(page, server, f"/store/{store}?group=t000004")
    assert page.get_attribute("[data-testid=episode-total]", "data-total") == str(len(tree))
    page.locator("[data-testid=group-link]").first.click()
    _settle(page)
    assert page.locator("[data-testid=tree-node]").count() == len(tree) == 6
    assert page.locator("[data-testid=group-member]").count() == len(tree)
    branches = [t for t in tree if t.parent_trajectory_id]
    assert page.locator("[data-testid=tree-node] .cell.branch").count() == len(
        [t for t in branches if t.branch_turn])
    page.locator("[data-testid=tree-node] a").first.click()
    _settle(page)
    assert page.locator("[data-testid=episode]").count() == 1


def test_a_damaged_store_shows_the_error_banner_not_a_blank_page(page: Any, server: ServerThread,
                                                                 sources: dict[str, Any]):
    damaged = next(s["id"] for s in sources["stores"] if s["name"] == "damaged")
    _open(page, server, f"/store/{damaged}")
    banner = page.locator("[data-testid=error-banner]")
    assert banner.is_visible() and "shard-000002" in banner.inner_text()
    assert re.search(r"0000beef.*kind", banner.inner_text())  # the shard lacking columns is named too
    assert page.locator("[data-testid=episode-row]").count() == 12  # what could be read is still shown
    page.locator("[data-testid=episode-row] td[data-col=env_id]").last.click()
    _settle(page)
    assert page.locator("[data-testid=episode]").count() == 1

    _open(page, server, "/store/no-such-store")
    assert "unknown store" in page.inner_text("[data-testid=error-banner]")
    assert page.locator("#view[data-state=error]").count() == 1


def test_the_url_reopens_the_same_view(page: Any, server: ServerThread, sources: dict[str, Any]):
    store = _store(sources, "train")
    _open(page, server, f"/store/{store}")
    page.select_option("[data-testid=filter-status]", "ok")
    _settle(page)
    page.click("[data-testid=sort-turns]")
    _settle(page)
    page.click("[data-testid=sort-turns]")  # again: descending
    _settle(page)
    assert "order=desc" in page.evaluate("location.hash")
    before = _row_ids(page)
    url = page.url
    page.reload()
    _settle(page)
    assert page.url == url
    assert page.input_value("[data-testid=filter-status]") == "ok"
    after = _row_ids(page)
    assert after == before and after

    page.go_back()  # the back button undoes the two sorts and the filter like any other navigation
    page.go_back()
    _settle(page)
    assert page.input_value("[data-testid=filter-status]") == "ok" and "sort=" not in page.evaluate("location.hash")
    page.go_back()
    _settle(page)
    assert page.input_value("[data-testid=filter-status]") == ""

    other = page.context.new_page()  # a shared link in a fresh tab
    other.goto(url)
    _settle(other)
    assert _row_ids(other) == before


def test_a_server_that_went_away_is_named_in_the_banner(browser: Any, viewer_run: Path):
    from agentenv.viewer import create_viewer_app

    server = ServerThread(create_viewer_app([viewer_run])).start()
    page = browser.new_page()
    try:
        page.set_default_timeout(TIMEOUT_MS)
        _open(page, server, "/")
        server.stop()
        page.evaluate("location.hash = '#/store/demo-run-train-0'")
        _settle(page)
        assert "Cannot reach the viewer server" in page.inner_text("[data-testid=error-banner]")
        assert page.locator("#view[data-state=error]").count() == 1
    finally:
        page.close()
        server.stop()


def test_a_page_whose_script_cannot_load_says_so(browser: Any):
    from fastapi import FastAPI
    from fastapi.responses import FileResponse

    import agentenv.viewer

    index = Path(agentenv.viewer.__file__).parent / "static" / "index.html"
    bare = FastAPI()  # serves the page but not its script
    bare.get("/")(lambda: FileResponse(index))
    with ServerThread(bare) as server:
        page = browser.new_page()
        try:
            page.goto(f"{server.url}/")
            page.wait_for_selector("#view[data-state=error]", timeout=TIMEOUT_MS)
            assert "could not load static/app.js" in page.inner_text("[data-testid=error-banner]")
        finally:
            page.close()


def test_the_screenshot_script_saves_one_png_per_view(browser: Any, tmp_path: Path):
    import importlib.util

    script = Path(__file__).resolve().parents[2] / "scripts" / "viewer_screenshots.py"
    spec = importlib.util.spec_from_file_location("viewer_screenshots", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    run = module.build_demo(tmp_path / "runs")
    shots = module.screenshots(run, tmp_path / "png", tmp_path / "runs" / "baseline", module.DEMO_EPISODE, browser)
    names = sorted(p.name for p in shots)
    assert names == sorted(f"viewer-{v}.png" for v in ("runs", "runs-side", "episodes", "episode", "episode-turns",
                                                        "tree"))
    for path in shots:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
